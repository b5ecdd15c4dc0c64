/*  nf_limits: the one table of limits every outside input is checked
    against (frames, files, flow files, command lines) before anything is
    allocated from it.  proto/README.md documents the same table ("Limits");
    tests/test_limits.c checks that the two agree, so change both together.

    Where they are checked: lib/wire/nf_msg_check.c, from nf_msg_recv (every pod,
    every socket: frame bytes, then the counts the frame's bytes hold, then
    the unpacked values) and nf_msg_check_request (the gateway's stricter
    check of what a client sends); lib/flow/nf_flow.c for the YAML depth;
    lib/io/nf_vecio.c for documents read from files.

    Why these values:
    - NF_FRAME_MAX 128 MiB: the largest legal index request, 10,000
      documents of dim 1536 (61 MiB of float32) with short texts, fits
      with room to spare; 10,000 documents of dim 65536 do not, and need
      smaller batches (the client's --batch).
    - NF_ANSWER_MAX 64 MiB: one answer (a shard's part, or the merged
      result) packed; a search asking for more (many queries x top_k x
      large texts) is answered STATUS_TOO_LARGE instead of gigabytes.
    - NF_TEXT_MAX 1 MiB: a long article; the 42 MB text of the issue is a
      bad request.  NF_TAGS_MAX 64 tags of NF_TAG_BYTES_MAX 1 KiB (key and
      value each): metadata, not documents.
    - NF_FRAME_TAGS_MAX 640,000 = NF_DOCS_MAX x NF_TAGS_MAX: an empty tag
      is 2 bytes on the wire and ~140 in memory once unpacked, so without a
      bound per frame an answer of 262,144 matches x 64 tags would unpack
      to 2.3 GB; 640,000 tags unpack to under 90 MiB.
    - NF_DOCS_MAX 10,000 documents (or delete ids) per request: the
      client's batches are 256 by default.
    - NF_QUERIES_MAX 1,024 queries per request, NF_TOPK_MAX 10,000 matches
      per query, and NF_MATCHES_MAX 262,144 = queries x top_k of one
      request (20 queries x 10,000 is legal; 1,024 x 10,000 is not), so
      one answer holds at most 262,144 matches before payloads.
    - NF_SHARDS_MAX 1,024 shards: a flow, a Plan, missing_shards.
    - NF_HOPS_MAX 64: a request's route (it passes 5 pods).
    - NF_HEADER_MAX 64 KiB: a header frame (64 hops and a status message
      fit many times over); the body frame is bounded by NF_FRAME_MAX.
    - NF_YAML_DEPTH_MAX 64: flow files nest 4 levels; libyaml's cost grows
      with the square of the depth, so depth is refused while parsing.
    - Typed fields (lib/store/nf_segment_fields.c, lib/search/nf_filter.c):
      NF_FIELDS_MAX 32 fields per segment (the commit slot's file table
      has 55 entries for the schema and columns: a keyword[] takes 3);
      NF_FIELD_NAME_MAX 48 bytes of a field name; NF_KEYWORD_MAX 1 KiB of
      one keyword (as a tag value); NF_KEYWORDS_MAX 256 keywords in one
      document's keyword[] value.
    - Filters: NF_FILTER_BYTES_MAX 4 KiB of filter text, NF_FILTER_DEPTH_MAX
      32 levels of nesting (parentheses and not), NF_FILTER_LIST_MAX 1,024
      values in one list (in [...], contains any/all [...]).  The parser
      is recursive; the depth bound keeps its stack small.  */
#ifndef NF_LIMITS_H
#define NF_LIMITS_H

#define NF_ID_MAX 256                   /* bytes of one document id */
#define NF_DIM_MAX 65536                /* values in one vector */
#define NF_TOPK_MAX 10000               /* matches per query */
#define NF_TOPK_DEFAULT 10              /* top_k of a search that gives 0 (the gateway stamps it) */
#define NF_TEXT_MAX (1u << 20)          /* bytes of one document's text */
#define NF_TAGS_MAX 64                  /* tags of one document */
#define NF_FRAME_TAGS_MAX 640000        /* tags in one frame, all documents or matches together */
#define NF_TAG_BYTES_MAX 1024           /* bytes of one tag key, and of one tag value */
#define NF_DOCS_MAX 10000               /* documents (or delete ids) per request */
#define NF_QUERIES_MAX 1024             /* queries per search request */
#define NF_MATCHES_MAX 262144           /* queries x top_k of one request */
#define NF_SHARDS_MAX 1024              /* shards of a flow (Plan, missing_shards) */
#define NF_HOPS_MAX 64                  /* hops in a request's route */
#define NF_FRAME_MAX (128u << 20)       /* bytes of one body frame */
#define NF_HEADER_MAX (64u << 10)       /* bytes of one header frame */
#define NF_ANSWER_MAX (64u << 20)       /* bytes of one answer (a part or a result), packed */
#define NF_YAML_DEPTH_MAX 64            /* nesting of a flow file */
#define NF_FIELDS_MAX 32                /* typed fields of one segment (and output fields or
                                           columns one request names) */
#define NF_FIELD_NAME_MAX 48            /* bytes of one field name */
#define NF_KEYWORD_MAX 1024             /* bytes of one keyword value */
#define NF_KEYWORDS_MAX 256             /* keywords of one keyword[] value */
#define NF_FILTER_BYTES_MAX 4096        /* bytes of one filter expression */
#define NF_FILTER_DEPTH_MAX 32          /* nesting of one filter expression */
#define NF_FILTER_LIST_MAX 1024         /* values in one list of a filter */
#define NF_TIMEOUT_MAX_MS 600000        /* the longest request timeout (ms) */

#endif
