package lexvla.index;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.core.WhitespaceAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.TermFrequencyAttribute;
import org.apache.lucene.document.BinaryDocValuesField;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.FieldType;
import org.apache.lucene.document.StringField;
import org.apache.lucene.index.ConcurrentMergeScheduler;
import org.apache.lucene.index.IndexOptions;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.search.similarities.Similarity;
import org.apache.lucene.store.FSDirectory;
import org.apache.lucene.util.BytesRef;

/**
 * Builds a Lucene impact index from {@code JsonVectorCollection} files ({@code {"id", "contents",
 * "vector": {word: impact}}} lines, one or more {@code *.jsonl} files in a folder).
 *
 * <p>The index is the one Anserini's {@code IndexCollection -collection JsonVectorCollection
 * -generator DefaultLuceneDocumentGenerator -impact -pretokenized} builds: the same fields ({@code
 * id} stored and as binary doc values, {@code contents} with documents and frequencies, not stored),
 * the impact as each word's term frequency ({@code asInt}: a float is truncated, a word whose impact
 * comes to 0 or less is left out, a document left with no word is skipped), {@code
 * ImpactSimilarity}, no compound files. Anserini writes each word impact times into a string and
 * tokenises it, so its cost grows with the sum of the impacts (with quantisation scale 1000, thousands
 * of tokens a document); here each word is one token carrying its frequency, so the cost grows with
 * the number of words.
 *
 * <p>Usage: {@code ImpactIndexer -input DIR -index DIR [-threads N] [-memoryBuffer MB]}. Files are
 * shared among the threads. Prints {@code "N documents indexed"} about every 10 seconds and once at
 * the end, and exits with 1 (and the message) on any error, after which the index folder is not
 * usable.
 */
public final class ImpactIndexer {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final FieldType CONTENTS = new FieldType();

  static {
    CONTENTS.setStored(false);
    CONTENTS.setTokenized(true);
    CONTENTS.setIndexOptions(IndexOptions.DOCS_AND_FREQS);
    CONTENTS.freeze();
  }

  private ImpactIndexer() {}

  /** One document's words, each once, with its impact as the term frequency. */
  static final class ImpactTokens extends TokenStream {
    private final CharTermAttribute term = addAttribute(CharTermAttribute.class);
    private final TermFrequencyAttribute freq = addAttribute(TermFrequencyAttribute.class);
    private final List<String> words = new ArrayList<>();
    private final List<Integer> impacts = new ArrayList<>();
    private int next;

    /** Takes the words of {@code vector} whose impact is positive; returns how many. */
    int set(JsonNode vector) {
      words.clear();
      impacts.clear();
      Iterator<Map.Entry<String, JsonNode>> fields = vector.fields();
      while (fields.hasNext()) {
        Map.Entry<String, JsonNode> e = fields.next();
        int impact = e.getValue().asInt();
        if (impact > 0 && !e.getKey().isEmpty()) {
          words.add(e.getKey());
          impacts.add(impact);
        }
      }
      return words.size();
    }

    @Override
    public boolean incrementToken() {
      if (next == words.size()) {
        return false;
      }
      clearAttributes();
      term.setEmpty().append(words.get(next));
      freq.setTermFrequency(impacts.get(next));
      next++;
      return true;
    }

    @Override
    public void reset() throws IOException {
      super.reset();
      next = 0;
    }
  }

  private static void indexFile(IndexWriter writer, Path file, AtomicLong indexed) throws IOException {
    ImpactTokens tokens = new ImpactTokens();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      int lineNo = 0;
      while ((line = in.readLine()) != null) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        JsonNode node = JSON.readTree(line);
        JsonNode id = node.get("id");
        JsonNode vector = node.get("vector");
        if (id == null || !id.isTextual() || vector == null || !vector.isObject()) {
          throw new IOException(file + ":" + lineNo + ": a line needs a string \"id\" and an object \"vector\"");
        }
        if (tokens.set(vector) == 0) {
          continue; // Anserini skips a document with no word (EmptyDocumentException)
        }
        Document doc = new Document();
        doc.add(new StringField("id", id.asText(), Field.Store.YES));
        doc.add(new BinaryDocValuesField("id", new BytesRef(id.asText())));
        doc.add(new Field("contents", tokens, CONTENTS));
        writer.addDocument(doc);
        indexed.incrementAndGet();
      }
    }
  }

  private static String arg(String[] args, String name, String fallback) {
    for (int i = 0; i + 1 < args.length; i++) {
      if (args[i].equals(name)) {
        return args[i + 1];
      }
    }
    if (fallback == null) {
      throw new IllegalArgumentException("missing " + name);
    }
    return fallback;
  }

  public static void main(String[] args) throws Exception {
    Path input = Paths.get(arg(args, "-input", null));
    Path index = Paths.get(arg(args, "-index", null));
    int threads = Math.max(1, Integer.parseInt(arg(args, "-threads", "1")));
    double buffer = Double.parseDouble(arg(args, "-memoryBuffer", "256"));
    List<Path> files;
    try (Stream<Path> listed = Files.list(input)) {
      files = listed.filter(p -> p.getFileName().toString().endsWith(".jsonl")).sorted().toList();
    }
    IndexWriterConfig config = new IndexWriterConfig(new WhitespaceAnalyzer());
    // Anserini's class file is Java 21, newer than the javac this jar is built with: found at run time
    config.setSimilarity((Similarity) Class.forName("io.anserini.search.similarity.ImpactSimilarity")
        .getDeclaredConstructor().newInstance());
    config.setOpenMode(IndexWriterConfig.OpenMode.CREATE);
    config.setRAMBufferSizeMB(buffer);
    config.setUseCompoundFile(false);
    config.setMergeScheduler(new ConcurrentMergeScheduler());
    AtomicLong indexed = new AtomicLong();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try (IndexWriter writer = new IndexWriter(FSDirectory.open(index), config)) {
      List<Future<?>> done = new ArrayList<>();
      for (Path file : files) {
        done.add(pool.submit(() -> {
          indexFile(writer, file, indexed);
          return null;
        }));
      }
      pool.shutdown();
      long last = System.nanoTime();
      for (Future<?> f : done) {
        while (true) {
          try {
            f.get(1, java.util.concurrent.TimeUnit.SECONDS);
            break;
          } catch (java.util.concurrent.TimeoutException waiting) {
            if (System.nanoTime() - last > 10_000_000_000L) {
              System.out.printf("%,d documents indexed%n", indexed.get());
              System.out.flush();
              last = System.nanoTime();
            }
          }
        }
      }
      writer.commit();
    } catch (Exception e) {
      pool.shutdownNow();
      Throwable cause = e instanceof java.util.concurrent.ExecutionException ? e.getCause() : e;
      System.out.println("ImpactIndexer failed: " + cause);
      System.out.flush();
      System.exit(1);
    }
    System.out.printf("%,d documents indexed%n", indexed.get());
    System.out.flush();
  }
}
