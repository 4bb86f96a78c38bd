"""The official `openai` Python SDK's `embeddings.create` against a running llmux gateway.

Environment: as for test_openai_sdk.py (LLMUX_GATEWAY_URL, LLMUX_GATEWAY_API_KEY), plus
  LLMUX_TEST_EMBED_MODEL  an embedding model the upstream serves (default `fake-model`: the
                          `llmux-mock openai` fake embeds with any model).
"""

import base64
import math
import os
import struct

import pytest

openai = pytest.importorskip("openai")

URL = os.environ.get("LLMUX_GATEWAY_URL", "").rstrip("/")
if URL and not URL.endswith("/v1"):
    URL += "/v1"
KEY = os.environ.get("LLMUX_GATEWAY_API_KEY") or None
MODEL = os.environ.get("LLMUX_TEST_EMBED_MODEL") or "fake-model"

pytestmark = pytest.mark.skipif(not URL, reason="LLMUX_GATEWAY_URL is not set")


@pytest.fixture(scope="module")
def client():
    return openai.OpenAI(base_url=URL, api_key=KEY or "no-key-needed", max_retries=0, timeout=30)


def vectors(r):
    return [list(d.embedding) for d in sorted(r.data, key=lambda d: d.index)]


def test_default_encoding_is_base64_and_decodes(client):
    # the SDK asks for base64 by default and decodes it itself
    r = client.embeddings.create(model=MODEL, input=["hello world", "goodbye"])
    assert r.object == "list"
    assert len(r.data) == 2
    assert all(d.object == "embedding" for d in r.data)
    vs = vectors(r)
    assert all(len(v) > 0 for v in vs)
    assert all(isinstance(x, float) for x in vs[0])
    floats = vectors(client.embeddings.create(model=MODEL, input=["hello world"], encoding_format="float"))
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(floats[0], vs[0]))
    assert r.usage.prompt_tokens > 0


def test_float_and_base64_agree(client):
    text = ["the same text"]
    as_float = vectors(client.embeddings.create(model=MODEL, input=text, encoding_format="float"))
    # asked for explicitly, base64 comes back as the string (little-endian float32s)
    raw = client.embeddings.create(model=MODEL, input=text, encoding_format="base64").data[0].embedding
    assert isinstance(raw, str)
    data = base64.b64decode(raw)
    as_b64 = [list(struct.unpack(f"<{len(data) // 4}f", data))]
    assert len(as_float[0]) == len(as_b64[0])
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(as_float[0], as_b64[0]))


def test_single_string_and_dimensions(client):
    r = client.embeddings.create(model=MODEL, input="one text", dimensions=4, encoding_format="float")
    assert len(r.data) == 1
    assert len(r.data[0].embedding) == 4


def test_token_arrays(client):
    r = client.embeddings.create(model=MODEL, input=[[1, 2, 3], [4]], encoding_format="float")
    assert len(r.data) == 2


def test_empty_input_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, input=[])
    assert e.value.body["param"] == "input"
