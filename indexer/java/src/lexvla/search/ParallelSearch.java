package lexvla.search;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.apache.lucene.analysis.core.WhitespaceAnalyzer;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.queryparser.classic.QueryParser;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.search.TopScoreDocCollector;
import org.apache.lucene.search.similarities.Similarity;

/**
 * Searches a batch of queries over a fixed pool of Java threads, in one call from Python.
 *
 * <p>Queries arrive as classic QueryParser text (see {@code indexer.searcher.query_string}); each
 * pool thread parses with a parser of its own, since QueryParser is not thread-safe. The caller
 * crosses into Java once a batch and the work runs on all cores while Python holds no lock: pyjnius
 * releases the GIL during the call.
 */
public final class ParallelSearch {
  private final ExecutorService pool;
  private final ExecutorService slicePool;
  private final ThreadLocal<QueryParser> parsers;
  private final String idField;
  private volatile int hitsThreshold = 1000; // Lucene's; Python sets indexer.lucene_search.HITS_THRESHOLD

  public ParallelSearch(String field, String idField, int threads) {
    this.idField = idField;
    this.parsers = ThreadLocal.withInitial(() -> new QueryParser(field, new WhitespaceAnalyzer()));
    this.pool = daemonPool(threads, "lexvla-search");
    // the segments of one search run here: a pool of their own, so a search waiting for its
    // segments never holds a thread they need
    this.slicePool = daemonPool(threads, "lexvla-slice");
  }

  private static ExecutorService daemonPool(int threads, String name) {
    return Executors.newFixedThreadPool(threads, task -> {
      Thread thread = new Thread(task, name);
      thread.setDaemon(true);
      return thread;
    });
  }

  /**
   * A searcher over {@code reader} scoring with {@code similarity}. One search scores the index's
   * segments in parallel, in slices of at least {@code sliceDocs} documents (a larger segment is a
   * slice of its own, smaller ones are grouped), when that gives more than one slice. Otherwise,
   * and with {@code sliceDocs} 0, one thread scores every segment in turn: an executor costs a
   * hand-off per search, more than a small index's search gains from it.
   */
  public IndexSearcher newSearcher(IndexReader reader, Similarity similarity, int sliceDocs) {
    IndexSearcher searcher;
    if (sliceDocs > 0 && IndexSearcher.slices(reader.leaves(), sliceDocs, Integer.MAX_VALUE).length > 1) {
      searcher = new IndexSearcher(reader, (Executor) slicePool) {
        @Override
        protected LeafSlice[] slices(List<LeafReaderContext> leaves) {
          return IndexSearcher.slices(leaves, sliceDocs, Integer.MAX_VALUE);
        }
      };
    } else {
      searcher = new IndexSearcher(reader);
    }
    searcher.setSimilarity(similarity);
    return searcher;
  }

  /** The answers of one batch, flattened: query i owns ids/scores[offsets[i] .. offsets[i+1]). */
  public static final class Batch {
    public String[] ids;
    public float[] scores;
    public int[] offsets;
    /** null where query i succeeded, else what went wrong with it (and only with it). */
    public String[] errors;
  }

  /** Top-{@code ks[i]} hits of {@code queries[i]}; one failed query does not fail the others. */
  public Batch search(IndexSearcher searcher, String[] queries, int[] ks) throws InterruptedException {
    int n = queries.length;
    String[][] ids = new String[n][];
    float[][] scores = new float[n][];
    String[] errors = new String[n];
    if (n == 1) {
      searchOne(searcher, queries[0], ks[0], 0, ids, scores, errors);
    } else {
      List<Callable<Void>> tasks = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        final int q = i;
        tasks.add(() -> {
          searchOne(searcher, queries[q], ks[q], q, ids, scores, errors);
          return null;
        });
      }
      for (Future<Void> done : pool.invokeAll(tasks)) {
        assert done.isDone();
      }
    }
    Batch batch = new Batch();
    batch.offsets = new int[n + 1];
    for (int i = 0; i < n; i++) {
      batch.offsets[i + 1] = batch.offsets[i] + (ids[i] == null ? 0 : ids[i].length);
    }
    batch.ids = new String[batch.offsets[n]];
    batch.scores = new float[batch.offsets[n]];
    for (int i = 0; i < n; i++) {
      if (ids[i] != null) {
        System.arraycopy(ids[i], 0, batch.ids, batch.offsets[i], ids[i].length);
        System.arraycopy(scores[i], 0, batch.scores, batch.offsets[i], scores[i].length);
      }
    }
    batch.errors = errors;
    return batch;
  }

  /**
   * After how many matching documents a search starts skipping those that cannot enter its top-k
   * (Lucene's block-max pruning: the top-k and its scores stay exact, only the count of hits
   * becomes a lower bound, which no caller reads). Lucene's own default is 1000; never below k.
   */
  public void setHitsThreshold(int threshold) {
    hitsThreshold = Math.max(1, threshold);
  }

  /** Documents matching {@code query}. */
  public int count(IndexSearcher searcher, String query) throws Exception {
    return searcher.count(parsers.get().parse(query));
  }

  /** Stops the pools' threads once their work is done. */
  public void shutdown() {
    pool.shutdown();
    slicePool.shutdown();
  }

  private void searchOne(IndexSearcher searcher, String query, int k, int i, String[][] ids, float[][] scores,
      String[] errors) {
    try {
      int n = Math.max(1, Math.min(k, searcher.getIndexReader().maxDoc()));
      // a shared manager: the slices of a sliced searcher share the hits threshold and the top-k
      TopDocs top = searcher.search(parsers.get().parse(query),
          TopScoreDocCollector.createSharedManager(n, null, Math.max(n, hitsThreshold)));
      StoredFields stored = searcher.storedFields();
      ScoreDoc[] docs = top.scoreDocs;
      String[] found = new String[docs.length];
      float[] points = new float[docs.length];
      for (int j = 0; j < docs.length; j++) {
        found[j] = stored.document(docs[j].doc).get(idField);
        points[j] = docs[j].score;
      }
      ids[i] = found;
      scores[i] = points;
    } catch (Exception | StackOverflowError e) {
      errors[i] = describe(e);
    }
  }

  /** The exception's class and message, without the (possibly huge) query text the parser quotes. */
  static String describe(Throwable e) {
    String message = String.valueOf(e.getMessage());
    int quoted = message.indexOf("Cannot parse '");
    if (quoted >= 0) {
      int end = message.lastIndexOf("': ");
      message = "cannot parse the query" + (end > quoted ? ": " + message.substring(end + 3) : "");
    }
    if (message.length() > 300) {
      message = message.substring(0, 300) + "...";
    }
    return e.getClass().getSimpleName() + ": " + message;
  }
}
