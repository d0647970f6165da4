/*
 * A minimal epoll echo server: the floor any event-loop server is measured
 * against in scripts/compare.sh.
 *
 *   epoll_echo [ADDR:PORT]      (default 127.0.0.1:0; prints "listening on ADDR")
 *
 * One thread, level-triggered epoll, non-blocking sockets. A readable
 * connection gets one read into a shared 64 KiB buffer and the bytes are
 * written straight back; only what the socket does not take is copied into
 * a per-connection buffer, and while that holds bytes the connection waits
 * for writability instead of reading (back-pressure, so a client that does
 * not read cannot make it grow without bound).
 *
 * The one idea: level-triggered registration is never touched on the fast
 * path. A message costs epoll_wait (shared with every other ready
 * connection), one read and one write: no epoll_ctl, no allocation. There
 * are no timeouts, no limits and no TLS: it is a baseline, not a server.
 *
 * Build: cc -O2 -o epoll_echo epoll_echo.c (benches/peers/build.sh).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER 65536
#define EVENTS 256

struct conn {
    int fd;
    char *pending; /* bytes the socket did not take yet */
    size_t pending_len;
};

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static void drop(int epfd, struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Writes what it can of bytes; keeps the rest. Returns -1 on a socket error. */
static int send_or_keep(int epfd, struct conn *c, const char *bytes, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(c->fd, bytes + done, len - done);
        if (n > 0) { done += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    size_t rest = len - done;
    if (rest == 0) return 0;
    char *kept = malloc(rest);
    if (!kept) return -1;
    memcpy(kept, bytes + done, rest);
    free(c->pending);
    c->pending = kept;
    c->pending_len = rest;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int parse_addr(const char *text, struct sockaddr_in *addr) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((unsigned short)atoi(colon + 1));
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
    struct sockaddr_in addr;
    if (parse_addr(argc > 1 ? argv[1] : "127.0.0.1:0", &addr) != 0) {
        fprintf(stderr, "epoll_echo: expected ADDR:PORT (IPv4), e.g. 127.0.0.1:0\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 4096) != 0) {
        perror("epoll_echo: listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    char shown[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, shown, sizeof shown);
    printf("epoll_echo: listening on %s:%d\n", shown, ntohs(addr.sin_port));
    fflush(stdout);

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    static char buffer[BUFFER];
    struct epoll_event events[EVENTS];

    while (!stopping) {
        int ready = epoll_wait(epfd, events, EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            perror("epoll_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < ready; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) { /* the listener: accept all that wait */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) { close(fd); continue; }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) { close(fd); free(nc); }
                }
                continue;
            }
            if (c->pending_len > 0) { /* writable again: finish the old echo first */
                char *kept = c->pending;
                size_t kept_len = c->pending_len;
                c->pending = NULL;
                c->pending_len = 0;
                int rc = send_or_keep(epfd, c, kept, kept_len);
                free(kept);
                if (rc != 0) { drop(epfd, c); continue; }
                if (c->pending_len == 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                }
                continue;
            }
            ssize_t n = read(c->fd, buffer, sizeof buffer);
            if (n > 0) {
                if (send_or_keep(epfd, c, buffer, (size_t)n) != 0) drop(epfd, c);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                drop(epfd, c);
            }
        }
    }
    return 0;
}
