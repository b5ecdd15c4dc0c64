#!/usr/bin/python3
"""A deliberately broken encoder pod, for tests/e2e/check_pod.sh: the Python
example encoder (pods/python/encoder.py) with one fault, chosen by the first
argument, that `nflow check-pod` must catch:

  forward_v99    passes a version-99 message on to --out instead of refusing it
  silent_control does not answer malformed frames on the control socket
  no_delimiter   drops the empty delimiter frame from its control replies
  miscount       counts a refused version-99 message as an error, not as malformed

Everything else it does right, so exactly the check for its fault fails.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "pods", "python"))
import encoder                  # noqa: E402  (finds nflow_pb2 as the pod does)

pb, PROTOCOL = encoder.pb, encoder.PROTOCOL
fault = sys.argv[1]


class Broken(encoder.Encoder):
    def on_request(self, frames):
        if fault in ("forward_v99", "miscount") and len(frames) == 2:
            head = pb.Header()
            try:
                head.ParseFromString(frames[0])
            except Exception:
                head = None
            if head is not None and head.version not in (1, PROTOCOL):
                if fault == "forward_v99":
                    return self.out.send_multipart(frames)
                return self.fail(head, pb.STATUS_BAD_VERSION, "version %d" % head.version)
        return super().on_request(frames)

    def on_control(self, frames):
        if fault == "silent_control":
            head = pb.Header()
            try:
                head.ParseFromString(frames[-2] if len(frames) >= 3 else b"\xff")
                ok = frames[-2] != b"" and head.body == pb.BODY_CONTROL
            except Exception:
                ok = False
            if not ok:
                return self.malformed("control", "ignored, unanswered")
        if fault == "no_delimiter" and len(frames) == 4 and frames[1] == b"":
            frames = [frames[0], frames[2], frames[3]]
        return super().on_control(frames)


pod = Broken(encoder.options(sys.argv[2:]))
pod.run()
