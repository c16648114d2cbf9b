/* What a cold cache line costs this core: P independent pointer chases through a random
 * cyclic permutation of MiB mebibytes of lines, on 4 KiB or transparent huge pages. With
 * P = 1 it is the load latency; with P = 10 to 16 the core's miss buffers are full and
 * ns/line is what each line a packet must fetch from memory costs at best.
 *
 *   gcc -O2 bench/probe/memlat.c -o /tmp/memlat && /tmp/memlat 512 12 1
 *   (arguments: MiB, P, 1 for huge pages)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 512;
	int par = argc > 2 ? atoi(argv[2]) : 1, huge = argc > 3 ? atoi(argv[3]) : 1;
	size_t size = mib << 20, lines = size / 64, steps = 2000000;
	uint64_t *perm = malloc(lines * sizeof(*perm)), p[64], x = 0;
	struct timespec t0, t1;
	double ns;
	char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (perm == NULL || mem == MAP_FAILED || par < 1 || par > 64)
		return 1;
	if (huge)
		madvise(mem, size, MADV_HUGEPAGE);
	for (size_t i = 0; i < lines; i++)
		perm[i] = i;
	srand(1);
	for (size_t i = lines - 1; i > 0; i--) {
		size_t j = (((uint64_t)rand() << 31) ^ (uint64_t)rand()) % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < lines; i++)
		*(uint64_t *)(mem + perm[i] * 64) = (uint64_t)(mem + perm[(i + 1) % lines] * 64);
	for (int c = 0; c < par; c++)
		p[c] = (uint64_t)(mem + perm[c * (lines / par)] * 64);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < steps; i++)
		for (int c = 0; c < par; c++)
			p[c] = *(uint64_t *)p[c];
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	for (int c = 0; c < par; c++)
		x ^= p[c];
	printf("%zu MiB, %s pages, %d chases: %.1f ns a step, %.1f ns a line (%lu)\n", mib,
	       huge ? "huge" : "4 KiB", par, ns / steps, ns / steps / par, (unsigned long)(x & 1));
	return 0;
}
