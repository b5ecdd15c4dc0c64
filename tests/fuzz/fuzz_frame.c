/* libFuzzer: the frame decoder.  The input is cut into the frames of one
   ZeroMQ message (see s_frames), sent over inproc to a PAIR or, when the
   first byte is odd, from a DEALER to a ROUTER (which adds the identity
   frame), and received with nf_msg_recv, which must answer NF_OK,
   NF_EPROTO or NF_EVERSION and never crash, leak or read out of bounds. */
#include "nf_error.h"
#include "nf_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static zsock_t *s_pair_out, *s_pair_in, *s_dealer, *s_router;

static void
s_close(void)
{
    zsock_destroy(&s_pair_out);
    zsock_destroy(&s_pair_in);
    zsock_destroy(&s_dealer);
    zsock_destroy(&s_router);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    zsys_init();
    zsys_set_logstream(NULL);
    s_pair_in = zsock_new_pair("@inproc://fuzz-pair");
    s_pair_out = zsock_new_pair(">inproc://fuzz-pair");
    s_router = zsock_new_router("@inproc://fuzz-router");
    s_dealer = zsock_new_dealer(">inproc://fuzz-router");
    if (!s_pair_in || !s_pair_out || !s_router || !s_dealer)
        abort();
    atexit(s_close);
    return 0;
}

/* Frames: byte 1 (mod 4) extra frames first, each a length byte then that
   many bytes; the rest of the input is the last frame. */
static zmsg_t *
s_frames(const uint8_t *data, size_t size)
{
    zmsg_t *m = zmsg_new();
    size_t extra = size > 1 ? data[1] % 4 : 0, at = size > 1 ? 2 : size;
    for (size_t i = 0; i < extra && at < size; i++) {
        size_t len = data[at++];
        if (len > size - at)
            len = size - at;
        zmsg_addmem(m, data + at, len);
        at += len;
    }
    zmsg_addmem(m, data + at, size - at);
    return m;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool router = size > 0 && (data[0] & 1);
    zmsg_t *m = s_frames(data, size);
    if (zmsg_send(&m, router ? s_dealer : s_pair_out) != 0)
        abort();
    nf_msg_t msg;
    int rc = nf_msg_recv(router ? s_router : s_pair_in, &msg);
    if (rc != 0 && rc != NF_EPROTO && rc != NF_EVERSION)
        abort();
    if (rc == 0 && !msg.env)
        abort();
    if (msg.env)
        (void) nf_msg_body_name(msg.env->body_case);
    nf_msg_clear(&msg);
    return 0;
}
