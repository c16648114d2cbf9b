/* intel-ipsec-mb's direct AES-GCM API for Rampart (see imb.h for why one manager is shared). */
#include "imb.h"

/* Written once by rampart_imb_init() before any key exists; read-only afterwards. The Rust
 * side runs init under a OnceLock and hands keys to other threads through synchronised
 * publication, so every reader sees the pointer. */
static IMB_MGR *mgr;

int rampart_imb_init(uint64_t *features)
{
	IMB_ARCH arch = IMB_ARCH_NONE;
	IMB_MGR *m;

	*features = 0;
	m = alloc_mb_mgr(0);
	if (m == NULL)
		return -1;
	init_mb_mgr_auto(m, &arch);
	*features = m->features;
	if (imb_get_errno(m) != 0 || arch == IMB_ARCH_NONE ||
	    ((m->features & IMB_FEATURE_SELF_TEST) &&
	     !(m->features & IMB_FEATURE_SELF_TEST_PASS))) {
		free_mb_mgr(m);
		return -1;
	}
	mgr = m;
	return (int)arch;
}

const char *rampart_imb_version(void)
{
	return imb_get_version_str();
}

int rampart_imb_gcm_pre(const uint8_t *key, size_t key_len, struct gcm_key_data *out)
{
	if (mgr == NULL)
		return -1;
	switch (key_len) {
	case 16:
		IMB_AES128_GCM_PRE(mgr, key, out);
		return 0;
	case 32:
		IMB_AES256_GCM_PRE(mgr, key, out);
		return 0;
	default:
		return -1;
	}
}

/* The context holds one operation's running state (GHASH, counter); on the stack it is
 * private to the call, which is what lets every thread use the shared manager. */
void rampart_imb_aes128_gcm_seal(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag)
{
	struct gcm_context_data ctx;

	IMB_AES128_GCM_ENC(mgr, key, &ctx, data, data, len, iv, aad, aad_len, tag, 16);
}

void rampart_imb_aes128_gcm_open(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag)
{
	struct gcm_context_data ctx;

	IMB_AES128_GCM_DEC(mgr, key, &ctx, data, data, len, iv, aad, aad_len, tag, 16);
}

void rampart_imb_aes256_gcm_seal(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag)
{
	struct gcm_context_data ctx;

	IMB_AES256_GCM_ENC(mgr, key, &ctx, data, data, len, iv, aad, aad_len, tag, 16);
}

void rampart_imb_aes256_gcm_open(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag)
{
	struct gcm_context_data ctx;

	IMB_AES256_GCM_DEC(mgr, key, &ctx, data, data, len, iv, aad, aad_len, tag, 16);
}
