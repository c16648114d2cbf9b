/* Non-inline wrappers for DPDK's static inline functions, so Rust can call them. */
#ifndef RAMPART_SHIM_H
#define RAMPART_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_crypto_op;
struct rte_ring;

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			       struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			       struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
				unsigned int count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);

uint16_t shim_rte_cryptodev_enqueue_burst(uint8_t dev_id, uint16_t qp_id,
					  struct rte_crypto_op **ops, uint16_t nb_ops);
uint16_t shim_rte_cryptodev_dequeue_burst(uint8_t dev_id, uint16_t qp_id,
					  struct rte_crypto_op **ops, uint16_t nb_ops);

unsigned int shim_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
					  unsigned int n);
unsigned int shim_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n);
unsigned int shim_rte_ring_count(const struct rte_ring *r);

int shim_rte_errno(void);
unsigned int shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);
uint64_t shim_rte_get_tsc_hz(void);

#endif
