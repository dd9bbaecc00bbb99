/*
 * The ceiling: a WebSocket echo server in C on epoll, as cheap as one gets.
 *
 * It is not a peer. It answers "how many round trips can the load generator
 * (client.c) drive on its one core?": if this target's figure is well above
 * the Python servers', the client was not what limited them.
 *
 * It serves bench/ws/client.c only: the handshake answer carries the accept
 * value of the client's fixed key (RFC 6455's example) without hashing, and
 * frames are assumed to be whole data frames of at most 64 KiB.
 *
 * Usage: ws_server HOST PORT  (runs until killed; the bench sends SIGTERM)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define HOLD_MAX (70 * 1024)

static const char ANSWER[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "\r\n";

struct conn {
    int fd;
    int open;          /* the handshake is done */
    size_t held;       /* bytes of an unfinished head or frame */
    char data[HOLD_MAX];
};

static char out[HOLD_MAX];

static void drop(struct conn *c) {
    close(c->fd);
    free(c);
}

/* Echo every whole frame in c->data; keep the rest. -1 to drop. */
static int echo_frames(struct conn *c) {
    size_t pos = 0, out_len = 0;
    while (c->held - pos >= 6) {
        unsigned char *f = (unsigned char *)c->data + pos;
        size_t len = f[1] & 0x7f, header = 6;
        if (len == 127 || !(f[1] & 0x80))
            return -1;
        if (len == 126) {
            if (c->held - pos < 8)
                break;
            len = ((size_t)f[2] << 8) | f[3];
            header = 8;
        }
        if (c->held - pos < header + len)
            break;
        if ((f[0] & 0x0f) == 8)
            return -1;
        if (out_len + 4 + len > sizeof out)
            return -1;
        /* Unmasked echo: same first byte, 7- or 16-bit length, payload. */
        unsigned char *o = (unsigned char *)out + out_len;
        o[0] = f[0];
        size_t o_header = 2;
        if (len < 126) {
            o[1] = (unsigned char)len;
        } else {
            o[1] = 126;
            o[2] = (unsigned char)(len >> 8);
            o[3] = (unsigned char)len;
            o_header = 4;
        }
        const unsigned char *mask = f + header - 4;
        for (size_t i = 0; i < len; i++)
            o[o_header + i] = f[header + i] ^ mask[i & 3];
        out_len += o_header + len;
        pos += header + len;
    }
    memmove(c->data, c->data + pos, c->held - pos);
    c->held -= pos;
    /* One frame in flight per connection: the reply always fits at once. */
    return out_len && send(c->fd, out, out_len, MSG_NOSIGNAL) != (ssize_t)out_len
               ? -1
               : 0;
}

static int on_readable(struct conn *c) {
    ssize_t got = recv(c->fd, c->data + c->held, sizeof c->data - c->held, 0);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (got <= 0)
        return -1;
    c->held += (size_t)got;
    if (!c->open) {
        char *end = memmem(c->data, c->held, "\r\n\r\n", 4);
        if (end == NULL)
            return c->held < sizeof c->data ? 0 : -1;
        size_t head = (size_t)(end + 4 - c->data);
        if (send(c->fd, ANSWER, sizeof ANSWER - 1, MSG_NOSIGNAL) < 0)
            return -1;
        memmove(c->data, c->data + head, c->held - head);
        c->held -= head;
        c->open = 1;
    }
    return echo_frames(c);
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
            if (c != NULL) {
                if (on_readable(c) < 0)
                    drop(c);
                continue;
            }
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
        }
    }
}
