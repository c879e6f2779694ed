package observability

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// LatencyBuckets spans 0.5 ms to 10 s, enough to see both in-process and slow paths.
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics are the cross-cutting metrics of one process. Create them once per process
// with NewMetrics and pass them to every component; service-specific metrics are
// registered by the services themselves on the same registry.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequestDuration *prometheus.HistogramVec // route, method, code
	GRPCServerDuration  *prometheus.HistogramVec // method, code
	GRPCClientDuration  *prometheus.HistogramVec // method, code
	KafkaProduced       *prometheus.CounterVec   // topic
	KafkaProduceErrors  *prometheus.CounterVec   // topic
	KafkaConsumed       *prometheus.CounterVec   // group, topic
	KafkaConsumerLag    *prometheus.GaugeVec     // group, topic, partition
	KafkaHandleDuration *prometheus.HistogramVec // group, topic
	KafkaConsumeDelay   *prometheus.HistogramVec // group, topic
	KafkaCommitDuration *prometheus.HistogramVec // group, topic
	MongoPoolInUse      prometheus.Gauge
	MongoPoolOpen       prometheus.Gauge
	MongoPoolMax        prometheus.Gauge
	MongoCommands       *prometheus.HistogramVec
}

// NewMetrics creates a registry with the Go and process collectors and the shared metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(reg)
	return &Metrics{
		Registry: reg,
		HTTPRequestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_http_request_duration_seconds", Help: "HTTP request latency by route pattern, method and status code.", Buckets: LatencyBuckets,
		}, []string{"route", "method", "code"}),
		GRPCServerDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_grpc_server_duration_seconds", Help: "gRPC server call latency by method and status code.", Buckets: LatencyBuckets,
		}, []string{"method", "code"}),
		GRPCClientDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_grpc_client_duration_seconds", Help: "gRPC client call latency by method and status code.", Buckets: LatencyBuckets,
		}, []string{"method", "code"}),
		KafkaProduced: f.NewCounterVec(prometheus.CounterOpts{
			Name: "helmdesk_kafka_produced_total", Help: "Records written to Kafka and acknowledged by all in-sync replicas.",
		}, []string{"topic"}),
		KafkaProduceErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "helmdesk_kafka_produce_errors_total", Help: "Failed Kafka writes.",
		}, []string{"topic"}),
		KafkaConsumed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "helmdesk_kafka_consumed_total", Help: "Records processed and committed by consumer groups.",
		}, []string{"group", "topic"}),
		KafkaConsumerLag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "helmdesk_kafka_consumer_lag", Help: "Records behind the partition's high watermark, per consumer group and partition.",
		}, []string{"group", "topic", "partition"}),
		KafkaHandleDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_kafka_batch_duration_seconds", Help: "Time to process one fetched batch before its offsets are committed.", Buckets: LatencyBuckets,
		}, []string{"group", "topic"}),
		KafkaConsumeDelay: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_kafka_consume_delay_seconds", Help: "From the first record of a batch being written to Kafka (its timestamp) to the batch reaching its handler.", Buckets: LatencyBuckets,
		}, []string{"group", "topic"}),
		KafkaCommitDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_kafka_commit_duration_seconds", Help: "Time to commit a partition's consumer offsets.", Buckets: LatencyBuckets,
		}, []string{"group", "topic"}),
		MongoPoolInUse: f.NewGauge(prometheus.GaugeOpts{
			Name: "helmdesk_mongodb_pool_connections_in_use", Help: "MongoDB connections checked out of the pool.",
		}),
		MongoPoolOpen: f.NewGauge(prometheus.GaugeOpts{
			Name: "helmdesk_mongodb_pool_connections_open", Help: "MongoDB connections open in the pool.",
		}),
		MongoPoolMax: f.NewGauge(prometheus.GaugeOpts{
			Name: "helmdesk_mongodb_pool_connections_max", Help: "Configured maximum size of the MongoDB pool.",
		}),
		MongoCommands: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "helmdesk_mongodb_command_duration_seconds", Help: "MongoDB command latency by command, collection and outcome (ok, error).", Buckets: LatencyBuckets,
		}, []string{"command", "collection", "outcome"}),
	}
}
