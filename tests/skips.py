"""The skips that may stay in CI, each with why. Any other skip fails `bash .ci/run` (``CI`` set):
a test that skips because a dependency the README's setup installs is missing means the setup
failed, and a green run would hide what it did not test. Matched as substrings of the skip reason."""

ALLOWED = {
    "this onnxruntime offers CUDA": "the CPU-only fallback test runs only where no CUDA provider exists (a GPU machine skips it)",
    "pypi package 'scikit-image' is not installed": "scikit-image is not a dependency: its 13 named photos are used where a user installs it",
    "tmpfs mount not permitted here": "the full-disk tests mount a small tmpfs, which needs root (CI and this project's machines run as root)",
}


def unlisted(reasons: list[str]) -> list[str]:
    """The skip reasons no entry of ``ALLOWED`` covers."""
    return [r for r in reasons if not any(allowed in r for allowed in ALLOWED)]
