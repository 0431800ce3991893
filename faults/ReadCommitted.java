import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * The fault suite's independent reader of a topic written in Kafka transactions (faults/committed-topic-reader.ts
 * runs it): Apache Kafka's own Java client, reading with isolation.level=read_committed, so records of aborted
 * transactions are hidden by the reference implementation, not by the client zeroloss itself uses.
 *
 *   java -cp '<kafka jars>/*' faults/ReadCommitted.java <bootstrap> <topic> <wait-stable-ms>
 *
 * With wait-stable-ms > 0 it first waits (up to that long) until no transaction is open on any partition
 * (the last stable offset equals the high watermark), so the read is final; with 0 it reads what is
 * committed now. It reads every partition from its start to its last stable offset, by position (commit
 * markers advance the position without being handed over), and prints one JSON line per record:
 * {"p":partition,"o":offset,"k":key,"id":zl-id,"seq":zl-seq,"in":fx-input,"w":fx-worker}. Exit code 3: not stable in time.
 */
public class ReadCommitted {
  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String topic = args[1];
    long waitStableMs = Long.parseLong(args[2]);
    Properties common = new Properties();
    common.put("bootstrap.servers", bootstrap);
    Map<TopicPartition, Long> ends;
    try (Admin admin = Admin.create(common)) {
      List<TopicPartition> partitions = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().stream()
          .map(p -> new TopicPartition(topic, p.partition()))
          .collect(Collectors.toList());
      long deadline = System.currentTimeMillis() + waitStableMs;
      while (true) {
        Map<TopicPartition, Long> stable = latest(admin, partitions, IsolationLevel.READ_COMMITTED);
        Map<TopicPartition, Long> high = latest(admin, partitions, IsolationLevel.READ_UNCOMMITTED);
        if (waitStableMs == 0 || stable.equals(high)) {
          ends = stable;
          break;
        }
        if (System.currentTimeMillis() > deadline) {
          System.err.println("ReadCommitted: " + topic + " has open transactions after " + waitStableMs + " ms: stable " + stable + ", high " + high);
          System.exit(3);
        }
        Thread.sleep(500);
      }
    }
    Properties props = new Properties();
    props.putAll(common);
    props.put("isolation.level", "read_committed");
    props.put("enable.auto.commit", "false");
    props.put("key.deserializer", ByteArrayDeserializer.class.getName());
    props.put("value.deserializer", ByteArrayDeserializer.class.getName());
    StringBuilder out = new StringBuilder();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> all = new ArrayList<>(ends.keySet());
      consumer.assign(all);
      consumer.seekToBeginning(all);
      Map<TopicPartition, Long> remaining = new HashMap<>(ends);
      remaining.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
      while (!remaining.isEmpty()) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          TopicPartition tp = new TopicPartition(r.topic(), r.partition());
          if (r.offset() >= ends.get(tp)) continue;
          out.append("{\"p\":").append(r.partition())
              .append(",\"o\":").append(r.offset())
              .append(",\"k\":").append(quote(r.key()))
              .append(",\"id\":").append(quote(header(r, "zl-id")))
              .append(",\"seq\":").append(quote(header(r, "zl-seq")))
              .append(",\"in\":").append(quote(header(r, "fx-input")))
              .append(",\"w\":").append(quote(header(r, "fx-worker")))
              .append("}\n");
        }
        remaining.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
      }
    }
    System.out.print(out);
  }

  private static Map<TopicPartition, Long> latest(Admin admin, List<TopicPartition> partitions, IsolationLevel level) throws Exception {
    Map<TopicPartition, OffsetSpec> spec = partitions.stream().collect(Collectors.toMap(p -> p, p -> OffsetSpec.latest()));
    return admin.listOffsets(spec, new ListOffsetsOptions(level)).all().get().entrySet().stream()
        .collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().offset()));
  }

  private static byte[] header(ConsumerRecord<byte[], byte[]> r, String name) {
    Header h = r.headers().lastHeader(name);
    return h == null ? null : h.value();
  }

  private static String quote(byte[] bytes) {
    if (bytes == null) return "null";
    String s = new String(bytes, StandardCharsets.UTF_8);
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }
}
