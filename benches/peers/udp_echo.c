/*
 * The smallest UDP echo server worth comparing with: one blocking socket,
 * recvmmsg then sendmmsg of the same buffers, nothing else. No reactor, no
 * service interface, no counters beyond three integers, no rate limit. It
 * is the floor a batched UDP echo server can approach, and
 * scripts/bench.sh measures `portcullis serve --service udp-echo` next to
 * it (server CPU per datagram, same load generator, same core).
 *
 *   gcc -O2 -o udp_echo benches/peers/udp_echo.c
 *   ./udp_echo 127.0.0.1 0 32      # address, port (0: any free), batch
 *
 * Prints `udp listening on ADDR:PORT` on stdout; on SIGTERM or SIGINT prints
 * `udp_echo: datagrams=N receive_calls=R send_calls=S` on stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 1024
#define SLOT 65536

static volatile sig_atomic_t stopping = 0;

static void on_signal(int signal) {
    (void)signal;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ADDR PORT [BATCH]\n", argv[0]);
        return 2;
    }
    int batch = argc > 3 ? atoi(argv[3]) : 32;
    if (batch < 1 || batch > MAX_BATCH) {
        fprintf(stderr, "udp_echo: batch must be 1 to %d\n", MAX_BATCH);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "udp_echo: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int buffer = 4 * 1024 * 1024; /* as portcullis asks for by default */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("udp_echo: bind");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
    printf("udp listening on %s:%d\n", text, ntohs(addr.sin_port));
    fflush(stdout);

    /* No SA_RESTART: the signal interrupts the blocking recvmmsg. */
    struct sigaction action = {.sa_handler = on_signal};
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    static char data[MAX_BATCH][SLOT];
    static struct sockaddr_in peers[MAX_BATCH];
    static struct iovec iovecs[MAX_BATCH];
    static struct mmsghdr messages[MAX_BATCH];
    unsigned long long datagrams = 0, receive_calls = 0, send_calls = 0;
    while (!stopping) {
        for (int i = 0; i < batch; i++) {
            iovecs[i] = (struct iovec){.iov_base = data[i], .iov_len = SLOT};
            messages[i].msg_hdr = (struct msghdr){
                .msg_name = &peers[i],
                .msg_namelen = sizeof peers[i],
                .msg_iov = &iovecs[i],
                .msg_iovlen = 1,
            };
        }
        receive_calls++;
        int n = recvmmsg(fd, messages, batch, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            perror("udp_echo: recvmmsg");
            break;
        }
        datagrams += n;
        for (int i = 0; i < n; i++)
            iovecs[i].iov_len = messages[i].msg_len;
        for (int sent = 0; sent < n;) {
            send_calls++;
            int m = sendmmsg(fd, messages + sent, n - sent, 0);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                break; /* drop the rest, as a UDP server must */
            }
            sent += m;
        }
    }
    fprintf(stderr, "udp_echo: datagrams=%llu receive_calls=%llu send_calls=%llu\n", datagrams,
            receive_calls, send_calls);
    return 0;
}
