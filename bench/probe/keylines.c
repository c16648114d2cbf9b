/* Which cache lines of an intel-ipsec-mb AES-128-GCM key (struct gcm_key_data) one seal of
 * LEN bytes reads, on this CPU's code path: flush one line, seal, time a load of that line
 * (flush+reload), for every line, 200 times. A line the seal read comes back cached.
 * This is what Aead::prefetch must fetch for a cold SA (ffi/src/imb.rs, SHORT_LINES).
 *
 *   gcc -O2 bench/probe/keylines.c -o /tmp/keylines -lIPSec_MB && /tmp/keylines 52
 */
#define LINUX
#include <intel-ipsec-mb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

static uint64_t load_time(volatile uint8_t *p)
{
	unsigned aux;
	uint64_t t0, t1;

	_mm_mfence();
	t0 = __rdtscp(&aux);
	(void)*p;
	t1 = __rdtscp(&aux);
	return t1 - t0;
}

int main(int argc, char **argv)
{
	enum { ROUNDS = 200, LINES = sizeof(struct gcm_key_data) / 64 };
	uint64_t len = argc > 1 ? strtoull(argv[1], NULL, 10) : 52;
	uint8_t key[16] = { 1, 2, 3 }, iv[12] = { 0 }, aad[8] = { 0 }, tag[16];
	int cached[LINES] = { 0 };
	struct gcm_context_data ctx;
	IMB_ARCH arch;
	IMB_MGR *m = alloc_mb_mgr(0);
	struct gcm_key_data *k = aligned_alloc(64, sizeof(*k));
	uint8_t *buf = aligned_alloc(64, 16384);

	if (m == NULL || k == NULL || buf == NULL || len > 16384)
		return 1;
	init_mb_mgr_auto(m, &arch);
	IMB_AES128_GCM_PRE(m, key, k);
	memset(buf, 1, 16384);
	for (int r = 0; r < ROUNDS; r++) {
		for (int l = 0; l < LINES; l++) {
			uint8_t *line = (uint8_t *)k + 64 * l;

			/* Everything else of the key is in L1, so the seal misses on nothing else
			 * and no hardware prefetcher is set off. */
			IMB_AES128_GCM_ENC(m, k, &ctx, buf, buf, len, iv, aad, 8, tag, 16);
			_mm_clflush(line);
			_mm_mfence();
			IMB_AES128_GCM_ENC(m, k, &ctx, buf, buf, len, iv, aad, 8, tag, 16);
			_mm_mfence();
			cached[l] += load_time(line) < 120;
		}
	}
	printf("arch %d, %llu bytes sealed; key lines read (offset: of %d rounds):\n", arch,
	       (unsigned long long)len, ROUNDS);
	for (int l = 0; l < LINES; l++)
		printf("%4d: %3d%s", 64 * l, cached[l], l % 8 == 7 ? "\n" : "  ");
	free_mb_mgr(m);
	return 0;
}
