/* Rampart's shim over intel-ipsec-mb's direct AES-GCM API (the one-call functions, not the
 * job manager): one IMB_MGR for the process, key precompute, and one-call seal and open.
 *
 * Sharing: the direct GCM functions are plain function pointers that init_mb_mgr_auto()
 * stores in the manager; their signatures (aes_gcm_enc_dec_t, aes_gcm_pre_t in
 * intel-ipsec-mb.h) take no IMB_MGR, only the read-only key data and a caller-owned
 * gcm_context_data. After init nothing writes the manager on this path, so one manager
 * serves every thread. (The job API, get_next_job/submit_job, does mutate the manager's
 * queues: that one would need a manager per thread. Rampart does not use it.) */
#ifndef RAMPART_IMB_H
#define RAMPART_IMB_H

/* The library was built with LINUX defined; without it the header drops the 64-byte
 * alignment of struct gcm_key_data that the library's vector code is written for. */
#ifndef LINUX
#define LINUX
#endif
#include <stddef.h>
#include <stdint.h>
#include <intel-ipsec-mb.h>

/* Allocates and initialises the process's manager (call once). Returns the IMB_ARCH chosen
 * (IMB_ARCH_SSE ... IMB_ARCH_AVX512, or IMB_ARCH_NOAESNI without AES-NI), or -1 when the
 * manager could not be allocated, initialised or failed the library's self-test.
 * *features gets the manager's IMB_FEATURE_* bits. */
int rampart_imb_init(uint64_t *features);

/* The library's version, e.g. "1.3.0" (of the library loaded, not of the header). */
const char *rampart_imb_version(void);

/* Expands a 16- or 32-byte AES key into *out (AES round keys and GHASH key powers).
 * Returns 0, or -1 for another key length or when rampart_imb_init() has not succeeded. */
int rampart_imb_gcm_pre(const uint8_t *key, size_t key_len, struct gcm_key_data *out);

/* AES-GCM with a 12-byte IV (RFC 4106: salt || explicit IV) over data[0..len) in place
 * and a 16-byte tag. Seal writes the ICV to tag; open decrypts and writes the computed
 * ICV to tag, for the caller to compare with the received one. Preconditions (the Rust
 * wrapper keeps them): rampart_imb_init() succeeded, the key was made by
 * rampart_imb_gcm_pre() with the matching size, no pointer is NULL, len < 2^36 - 32. */
void rampart_imb_aes128_gcm_seal(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag);
void rampart_imb_aes128_gcm_open(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag);
void rampart_imb_aes256_gcm_seal(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag);
void rampart_imb_aes256_gcm_open(const struct gcm_key_data *key, const uint8_t *iv,
				 const uint8_t *aad, uint64_t aad_len, uint8_t *data,
				 uint64_t len, uint8_t *tag);

#endif
