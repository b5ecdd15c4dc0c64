/*  nf_limits: the one table of limits every outside input is checked
    against (frames, files, flow files, command lines) before anything is
    allocated from it.  proto/README.md documents the same table; a unit
    test checks that the two agree.                                        */
#ifndef NF_LIMITS_H
#define NF_LIMITS_H

#define NF_ID_MAX 256           /* bytes of one document id */
#define NF_DIM_MAX 65536        /* values in one vector */
#define NF_TOPK_MAX 10000       /* matches per query */
#define NF_TAGS_MAX 64          /* tags of one document */
#define NF_FRAME_MAX (128u << 20) /* bytes of one ZeroMQ message: ZMQ_MAXMSGSIZE
                                   of every socket (lib/wire/nf_socket.c); a
                                   bigger one is dropped before it is read */
#define NF_TIMEOUT_MAX_MS 600000 /* the longest request timeout (ms) */
#define NF_SHARDS_MAX 65536     /* shards of one flow, as pods accept them */

#endif
