"""Serving needs numpy, onnxruntime, tokenizers and the JVM (with the heap it is told): never torch."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from service.config import Settings


def test_service_search_and_encode_do_not_import_torch_and_the_jvm_heap_is_the_settings(mini_bundle_dir, shape_index, shape_images):
    image = next(shape_images.glob("*.png"))
    code = textwrap.dedent(f"""
        import sys
        from service.config import Settings
        from service.engine import Engine
        from service.app import create_app
        engine = Engine.load(Settings(bundle={str(mini_bundle_dir)!r}, index={str(shape_index)!r}, redis_url="",
                                        jvm_heap="300m"))
        import jnius
        max_heap = jnius.autoclass("java.lang.Runtime").getRuntime().maxMemory()
        assert 200 * 2**20 < max_heap <= 300 * 2**20, max_heap  # -Xmx300m (less a survivor space)
        create_app(engine.settings, engine)
        result = engine.search.search_text("a red circle", k=3)
        assert result.hits, result
        engine.bundle.encode_images_dense([__import__("PIL.Image").Image.open({str(image)!r})], patches=True)
        heavy = sorted(m for m in ("torch", "transformers", "pyserini", "peft") if m in sys.modules)
        print("heavy:", heavy)
        assert not heavy, heavy
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


def test_a_jvm_heap_that_is_not_a_size_is_refused():
    with pytest.raises(ValidationError, match="jvm_heap"):
        Settings(jvm_heap="lots")
