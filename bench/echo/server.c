/*
 * The ceiling: an echo server in C on epoll, as cheap as a server gets.
 *
 * It is not a peer. It answers "how many round trips can the load generator
 * drive on its one core?": if this target's figure is well above the Python
 * servers', the client was not what limited them.
 *
 * Usage: echo_server HOST PORT  (runs until killed; the bench sends SIGTERM)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BUFFER_SIZE (256 * 1024)

struct conn {
    int fd;
    char *pending; /* unsent echo, when the peer's window was full */
    size_t pending_len;
};

static char buffer[BUFFER_SIZE];

static void drop(struct conn *c) {
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Queue what send() could not take, and wait for EPOLLOUT before reading on. */
static int hold(int ep, struct conn *c, const char *data, size_t len) {
    c->pending = malloc(len);
    if (!c->pending)
        return -1;
    memcpy(c->pending, data, len);
    c->pending_len = len;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static ssize_t send_some(int fd, const char *data, size_t len) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return n;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "bad address\n");
        return 2;
    }
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listener, 2048) < 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int ready = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            perror("epoll_wait");
            return 1;
        }
        for (int e = 0; e < ready; e++) {
            struct conn *c = events[e].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *n = calloc(1, sizeof *n);
                    if (!n) {
                        close(fd);
                        continue;
                    }
                    n->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = n};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->pending) {
                ssize_t n = send_some(c->fd, c->pending, c->pending_len);
                if (n < 0) {
                    drop(c);
                    continue;
                }
                if ((size_t)n < c->pending_len) {
                    memmove(c->pending, c->pending + n, c->pending_len - (size_t)n);
                    c->pending_len -= (size_t)n;
                    continue;
                }
                free(c->pending);
                c->pending = NULL;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            ssize_t got = recv(c->fd, buffer, sizeof buffer, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                drop(c);
                continue;
            }
            ssize_t sent = send_some(c->fd, buffer, (size_t)got);
            if (sent < 0 ||
                (sent < got && hold(ep, c, buffer + sent, (size_t)(got - sent)) < 0))
                drop(c);
        }
    }
}
