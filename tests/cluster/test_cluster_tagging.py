"""The cluster ingress's request tagging: headers or vllm_xargs, the single server's validation."""

from __future__ import annotations

from justitia.cluster.tagging import Tag, tag_request
from justitia.vllm.middleware import BadInput


def test_headers_tag_a_request_and_xargs_win() -> None:
    body, tag = tag_request({"prompt": "x"}, {"X-Justitia-App-Id": "run-7", "X-Justitia-Weight": "2.5"})
    assert isinstance(tag, Tag) and (tag.app_id, tag.weight) == ("run-7", 2.5)
    assert body["vllm_xargs"] == {"app_id": "run-7", "weight": 2.5}
    _, tag = tag_request({"prompt": "x", "vllm_xargs": {"app_id": "mine", "app_done": True}},
                         {"x-justitia-app-id": "hdr"})
    assert (tag.app_id, tag.done) == ("mine", True)


def test_untagged_request_is_its_own_application() -> None:
    body, tag = tag_request({"prompt": "x"}, {})
    assert tag.app_id is None and "vllm_xargs" not in body


def test_bad_headers_are_refused_naming_the_header() -> None:
    bad = tag_request({"prompt": "x"}, {"X-Justitia-Weight": "heavy"})
    assert isinstance(bad, BadInput) and bad.field == "X-Justitia-Weight"
    bad = tag_request({"prompt": "x"}, {"X-Justitia-Weight": "0"})
    assert isinstance(bad, BadInput) and bad.field == "X-Justitia-Weight" and "> 0" in bad.message
    bad = tag_request({"prompt": "x"}, {"X-Justitia-App-Id": "a\x01b"})
    assert isinstance(bad, BadInput) and bad.field == "X-Justitia-App-Id" and "control" in bad.message


def test_bad_xargs_get_the_single_servers_400() -> None:
    bad = tag_request({"prompt": "x", "vllm_xargs": {"wieght": 2}}, {})
    assert isinstance(bad, BadInput) and "did you mean vllm_xargs.weight" in bad.message
    bad = tag_request({"prompt": "x", "app_id": "top"}, {})
    assert isinstance(bad, BadInput) and bad.field == "app_id"
    assert isinstance(tag_request([1, 2], {}), BadInput)
