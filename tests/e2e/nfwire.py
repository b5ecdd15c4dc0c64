"""nfwire: protocol version 2 (proto/README.md) for the e2e tests' raw clients.

A message is [routing frames] [Header] [body]; the body frame holds the
message Header.body names (empty for BODY_NONE).  Index batches and deletes
are columnar: ids (and texts, tag keys, tag values) concatenated in one
blob with cumulative end offsets, vectors as one float32 block.
"""
import struct

import nflow_pb2 as pb

VERSION = 2
BODIES = {pb.BODY_INDEX: pb.IndexBatch, pb.BODY_DELETE: pb.DeleteRequest,
          pb.BODY_SEARCH: pb.SearchRequest, pb.BODY_CONTROL: pb.Control,
          pb.BODY_RESULT: pb.Result, pb.BODY_PLAN: pb.Plan}
KINDS = {cls: kind for kind, cls in BODIES.items()}


def frames(body=None, request_id=0, time_left_us=0, version=VERSION, status=None):
    """[header bytes, body bytes] for body (a protobuf message of BODIES, or None)."""
    head = pb.Header(version=version, request_id=request_id, time_left_us=time_left_us)
    if status is not None:
        head.status.code, head.status.message = status
    if body is None:
        return [head.SerializeToString(), b""]
    head.body = KINDS[type(body)]
    return [head.SerializeToString(), body.SerializeToString()]


def parse(parts):
    """(Header, body message or None) of [header, body] (routing frames stripped)."""
    assert len(parts) == 2, f"expected a header and a body frame, got {len(parts)}"
    head = pb.Header.FromString(parts[0])
    body = BODIES[head.body].FromString(parts[1]) if head.body in BODIES else None
    return head, body


def ends(items):
    out, at = [], 0
    for item in items:
        at += len(item)
        out.append(at)
    return out


def vec(values):
    return struct.pack(f"<{len(values)}f", *values)


def index_batch(docs):
    """docs: dicts with id, and text, vector (list of floats), tags (dict) optional."""
    b = pb.IndexBatch(count=len(docs))
    ids = [d["id"].encode() for d in docs]
    b.ids, b.id_ends[:] = b"".join(ids), ends(ids)
    vectors = [d["vector"] for d in docs if d.get("vector") is not None]
    if vectors:
        b.dim = len(vectors[0])
        b.vectors = b"".join(vec(v) for v in vectors)
    texts = [d.get("text", "").encode() for d in docs]
    if any(texts):
        b.texts, b.text_ends[:] = b"".join(texts), ends(texts)
    tags = [list(d.get("tags", {}).items()) for d in docs]
    if any(tags):
        flat = [t for ts in tags for t in ts]
        b.tag_ends[:] = ends(tags)
        keys = [k.encode() for k, _ in flat]
        values = [v.encode() for _, v in flat]
        b.tag_keys, b.tag_key_ends[:] = b"".join(keys), ends(keys)
        b.tag_values, b.tag_value_ends[:] = b"".join(values), ends(values)
    return b


def delete(ids):
    raw = [i.encode() for i in ids]
    return pb.DeleteRequest(count=len(ids), ids=b"".join(raw), id_ends=ends(raw))


def search(vectors=None, texts=None, top_k=0, with_payload=False):
    """A SearchRequest of query vectors (lists of floats) and/or texts."""
    s = pb.SearchRequest(top_k=top_k, with_payload=with_payload)
    s.count = len(vectors) if vectors else len(texts)
    if vectors:
        s.dim = len(vectors[0])
        s.vectors = b"".join(vec(v) for v in vectors)
    if texts:
        s.texts.extend(texts)
    return s
