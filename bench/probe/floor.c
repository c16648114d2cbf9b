/* floor: crypto plus I/O alone on one core, measured in one loop: what a gateway with no code of
 * its own would reach on the compare_secgw.sh harness. One lcore receives a burst from port RX,
 * runs intel-ipsec-mb's AES-128-GCM over each frame in place (the same bytes, calls and
 * arguments that Rampart's ESP makes: seal the inner packet and its 2-byte trailer padded to 4,
 * or open the ciphertext of an ESP frame), and transmits the burst on port TX. No parsing, no
 * lookups, no headers. compare_secgw.sh reads its rate over telemetry like the gateways'.
 *
 *   gcc -O2 bench/probe/floor.c -o /tmp/floor $(pkg-config --cflags --libs libdpdk) -lIPSec_MB
 *   /tmp/floor -l 0,1 --no-huge -m 1024 --no-pci --vdev net_pcap0,rx_pcap=plain_1420.pcap,infinite_rx=1 \
 *       --vdev net_null1,no-rx=1 -- seal 0 1          # seal|open RX TX
 */
#define LINUX
#include <intel-ipsec-mb.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <immintrin.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BURST 32
#define ETH 14
#define ESP_HDRS (ETH + 20 + 8 + 8) /* Ethernet, outer IPv4, SPI and sequence, IV */
#define ICV 16
#define SALT 0x01020304ull
#define SPI 0x00100000ull

static volatile int quit;
static int sealing;
static uint16_t rx_port, tx_port;
static IMB_MGR *mgr;
static struct gcm_key_data key;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static int loop(void *arg)
{
	struct rte_mbuf *bufs[BURST];
	struct gcm_context_data ctx;
	uint8_t tag[ICV];
	uint64_t seq = 0;

	(void)arg;
	while (!quit) {
		uint16_t n = rte_eth_rx_burst(rx_port, 0, bufs, BURST);

		for (uint16_t i = 0; i < n; i++) {
			uint8_t *p = rte_pktmbuf_mtod(bufs[i], uint8_t *);
			uint32_t len = rte_pktmbuf_data_len(bufs[i]);
			/* The nonce (salt, IV) and the AAD (SPI, sequence) each written in one 16-byte
			 * store, as Rampart writes them: ipsec-mb reads them with vector loads, which
			 * cannot take their data from narrower stores just made. */
			_Alignas(16) uint8_t nonce_aad[32];

			seq++;
			_mm_store_si128((__m128i *)nonce_aad, _mm_set_epi64x((long long)(seq >> 32), (long long)(SALT | seq << 32)));
			_mm_store_si128((__m128i *)(nonce_aad + 16), _mm_set_epi64x(0, (long long)(SPI | seq << 32)));
			if (sealing && len > ETH) {
				uint32_t l = len - ETH + 2;

				l += (4 - l % 4) % 4; /* the tailroom holds the trailer and ICV */
				IMB_AES128_GCM_ENC(mgr, &key, &ctx, p + ETH, p + ETH, l, nonce_aad, nonce_aad + 16, 8,
						   p + ETH + l, ICV);
			} else if (len > ESP_HDRS + ICV) {
				IMB_AES128_GCM_DEC(mgr, &key, &ctx, p + ESP_HDRS, p + ESP_HDRS, len - ESP_HDRS - ICV,
						   nonce_aad, nonce_aad + 16, 8, tag, ICV);
			}
		}
		uint16_t sent = rte_eth_tx_burst(tx_port, 0, bufs, n);

		if (sent < n)
			rte_pktmbuf_free_bulk(bufs + sent, n - sent);
	}
	return 0;
}

static int setup_port(uint16_t port, struct rte_mempool *mp)
{
	struct rte_eth_conf conf;

	memset(&conf, 0, sizeof(conf));
	if (rte_eth_dev_configure(port, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(port, 0, 1024, rte_socket_id(), NULL, mp) < 0 ||
	    rte_eth_tx_queue_setup(port, 0, 1024, rte_socket_id(), NULL) < 0 || rte_eth_dev_start(port) < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t k[16] = { 1, 2, 3, 4 };
	int used = rte_eal_init(argc, argv);

	if (used < 0) {
		fprintf(stderr, "floor: EAL init failed\n");
		return 1;
	}
	argc -= used;
	argv += used;
	if (argc != 4 || (strcmp(argv[1], "seal") && strcmp(argv[1], "open"))) {
		fprintf(stderr, "usage: floor EAL... -- seal|open RX TX\n");
		return 2;
	}
	sealing = !strcmp(argv[1], "seal");
	rx_port = atoi(argv[2]);
	tx_port = atoi(argv[3]);
	mgr = alloc_mb_mgr(0);
	if (mgr == NULL)
		return 1;
	init_mb_mgr_auto(mgr, NULL);
	IMB_AES128_GCM_PRE(mgr, k, &key);
	struct rte_mempool *mp = rte_pktmbuf_pool_create("floor", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());

	if (mp == NULL || setup_port(rx_port, mp) || setup_port(tx_port, mp)) {
		fprintf(stderr, "floor: pool or port setup failed\n");
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	unsigned lcore = rte_get_next_lcore(-1, 1, 0);

	if (lcore < RTE_MAX_LCORE)
		rte_eal_remote_launch(loop, NULL, lcore);
	else
		loop(NULL);
	rte_eal_mp_wait_lcore();
	rte_eth_dev_stop(rx_port);
	rte_eth_dev_stop(tx_port);
	rte_eal_cleanup();
	return 0;
}
