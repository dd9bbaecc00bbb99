/*
 * Echo load generator: CONNECTIONS sockets, each sending one SIZE-byte message
 * and waiting for all of it to come back before sending the next.
 *
 * Written in C because a Python client pinned to one core tops out below what
 * the servers under test can do: each round trip costs this program one send,
 * one recv and a share of an epoll_wait, a few microseconds, while the Python
 * servers spend several times that. The bench reports this program's CPU
 * share next to the server's so a ceiling would show.
 *
 * Usage: echo_client HOST PORT CONNECTIONS SIZE SECONDS MAX_MESSAGES
 * Prints one line: messages=N seconds=S errors=E connections=C
 * It stops by itself after SECONDS or MAX_MESSAGES round trips, whichever
 * comes first.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE (1 << 20)
#define MAX_EVENTS 256

struct conn {
    int fd;
    size_t sent;     /* bytes of the current message handed to the kernel */
    size_t received; /* bytes of the current message echoed back */
    int want_out;    /* registered for EPOLLOUT after a short send */
};

static char *outgoing;
static char incoming[256 * 1024];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int watch(int ep, struct conn *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    c->want_out = out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is left of the current message; 0 when done or waiting, -1 on error. */
static int push(int ep, struct conn *c, size_t size) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, outgoing + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return c->want_out ? 0 : watch(ep, c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
    return c->want_out ? watch(ep, c, 0) : 0;
}

static int open_conn(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    /* Small messages must leave at once, as a real request would. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr,
                "usage: %s HOST PORT CONNECTIONS SIZE SECONDS MAX_MESSAGES\n",
                argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[2]))};
    int count = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    unsigned long long max_messages = strtoull(argv[6], NULL, 10);
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || count < 1 ||
        size < 1 || size > MAX_SIZE || seconds <= 0 || max_messages < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    outgoing = malloc(size);
    struct conn *conns = calloc((size_t)count, sizeof *conns);
    int ep = epoll_create1(0);
    if (!outgoing || !conns || ep < 0) {
        perror("setup");
        return 1;
    }
    memset(outgoing, 'x', size);

    /* Connect everyone first (blocking, so a full accept queue only delays),
     * then start the clock: the figure is round trips, not handshakes. */
    for (int i = 0; i < count; i++) {
        int fd = open_conn(&addr);
        if (fd < 0) {
            perror("connect");
            return 1;
        }
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
            perror("fcntl");
            return 1;
        }
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll_ctl");
            return 1;
        }
    }

    unsigned long long messages = 0;
    int errors = 0, alive = count;
    double start = now(), deadline = start + seconds;
    for (int i = 0; i < count; i++) {
        if (push(ep, &conns[i], size) < 0) {
            errors++;
            close(conns[i].fd);
            conns[i].fd = -1;
            alive--;
        }
    }

    struct epoll_event events[MAX_EVENTS];
    double finished = start;
    while (alive > 0 && messages < max_messages) {
        finished = now();
        if (finished >= deadline)
            break;
        int ready = epoll_wait(ep, events, MAX_EVENTS, 100);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            perror("epoll_wait");
            break;
        }
        for (int e = 0; e < ready; e++) {
            struct conn *c = events[e].data.ptr;
            if (c->fd < 0)
                continue;
            int failed = 0;
            if (events[e].events & EPOLLOUT)
                failed = push(ep, c, size) < 0;
            if (!failed && (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                ssize_t n = recv(c->fd, incoming, sizeof incoming, 0);
                if (n > 0) {
                    c->received += (size_t)n;
                    if (c->received >= size) {
                        /* The whole echo is back: one round trip; next. */
                        messages++;
                        c->received = 0;
                        c->sent = 0;
                        failed = push(ep, c, size) < 0;
                    }
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    failed = 1;
                }
            }
            if (failed) {
                errors++;
                close(c->fd);
                c->fd = -1;
                alive--;
            }
        }
    }
    finished = now();

    printf("messages=%llu seconds=%.6f errors=%d connections=%d\n", messages,
           finished - start, errors, count);
    for (int i = 0; i < count; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    return 0;
}
