package rpc

import (
	"go.opentelemetry.io/otel/propagation"

	"github.com/helmdesk/helmdesk/pkg/observability"
)

func propagator() propagation.TextMapPropagator { return observability.Propagator }
