"""Serving needs numpy, onnxruntime, tokenizers and the JVM: never torch."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def test_service_search_and_encode_do_not_import_torch(mini_bundle_dir, shape_index, shape_images):
    image = next(shape_images.glob("*.png"))
    code = textwrap.dedent(f"""
        import sys
        from service.config import Settings
        from service.engine import Engine
        from service.app import create_app
        engine = Engine.load(Settings(bundle={str(mini_bundle_dir)!r}, index={str(shape_index)!r}, redis_url=""))
        create_app(engine.settings, engine)
        result = engine.search_text("a red circle", k=3)
        assert result.hits, result
        engine.bundle.encode_images_dense([__import__("PIL.Image").Image.open({str(image)!r})], patches=True)
        heavy = sorted(m for m in ("torch", "transformers", "pyserini", "peft") if m in sys.modules)
        print("heavy:", heavy)
        assert not heavy, heavy
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
