{{/*
Names. As in llm-d Router's charts: the InferencePool is the release name, and
llm-epp's Deployment, Service, ServiceAccount and ConfigMap are <release>-epp.
*/}}
{{- define "llm-epp.poolName" -}}
{{- .Release.Name | lower | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-epp.name" -}}
{{- printf "%s-epp" (.Release.Name | lower | trunc 40 | trimSuffix "-") -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "llm-epp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-epp
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{ include "llm-epp.selectorLabels" . }}
{{- end -}}

{{/* The labels the Service (and the ServiceMonitor) select llm-epp's pods by. */}}
{{- define "llm-epp.selectorLabels" -}}
app.kubernetes.io/name: llm-epp
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Whether llm-epp runs with leader election: router.epp.flags.ha-enable-leader-election
when given, else more than one replica. "true" or "".
*/}}
{{- define "llm-epp.leaderElection" -}}
{{- $flags := .Values.router.epp.flags | default dict -}}
{{- if hasKey $flags "ha-enable-leader-election" -}}
{{- if has (toString (index $flags "ha-enable-leader-election") | lower) (list "true" "1" "t" "yes") -}}true{{- end -}}
{{- else if gt (int .Values.router.epp.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/* Whether ext_proc is served over TLS (llm-epp's default, unless flags.secure-serving is false). "true" or "". */}}
{{- define "llm-epp.secureServing" -}}
{{- $flags := .Values.router.epp.flags | default dict -}}
{{- if not (hasKey $flags "secure-serving") -}}true
{{- else if has (toString (index $flags "secure-serving") | lower) (list "true" "1" "t" "yes") -}}true
{{- end -}}
{{- end -}}

{{/*
A flag value as llm-epp reads it. YAML numbers reach templates as floats, so
whole numbers are written without an exponent or a decimal point.
*/}}
{{- define "llm-epp.flagValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Whether /metrics asks for a bearer token (router.monitoring.prometheus.auth.enabled). "true" or "". */}}
{{- define "llm-epp.metricsAuth" -}}
{{- if dig "prometheus" "auth" "enabled" false (deepCopy .Values.router.monitoring) -}}true{{- end -}}
{{- end -}}

{{/* The ConfigMap's files: the two built in, then router.epp.pluginsCustomConfig (which may replace them). */}}
{{- define "llm-epp.configFiles" -}}
{{- $files := dict "default-plugins.yaml" (include "llm-epp.defaultPlugins" .) "payload-agnostic.yaml" (include "llm-epp.payloadAgnostic" .) -}}
{{- range $name, $text := (.Values.router.epp.pluginsCustomConfig | default dict) -}}
{{- if not (kindIs "string" $text) -}}
{{- fail (printf "router.epp.pluginsCustomConfig.%s must be the config file's YAML text (use a block scalar: `%s: |`), not a %s" $name $name (kindOf $text)) -}}
{{- end -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $name) -}}
{{- fail (printf "router.epp.pluginsCustomConfig: %q is not a valid ConfigMap key (letters, digits, '-', '_', '.')" $name) -}}
{{- end -}}
{{- $_ := set $files $name $text -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/*
Checks on the values, with a message naming the value. llm-d Router features
llm-epp does not have are refused rather than silently dropped.
*/}}
{{- define "llm-epp.validate" -}}
{{- $r := .Values.router -}}
{{- range $legacy, $now := dict "inferenceExtension" "router.epp, router.monitoring and router.tracing" "inferencePool" "router.modelServers and router.inferencePool" "inferenceObjectives" "router.inferenceObjectives" "experimentalHttpRoute" "httpRoute" -}}
{{- if hasKey $.Values $legacy -}}
{{- fail (printf "top-level %s is the layout of the GAIE charts; this chart reads %s (as llm-d Router's charts do)" $legacy $now) -}}
{{- end -}}
{{- end -}}
{{- if not (and (kindIs "map" $r.modelServers.matchLabels) $r.modelServers.matchLabels) -}}
{{- fail "router.modelServers.matchLabels is required: the labels of the model-server pods the InferencePool selects (e.g. --set router.modelServers.matchLabels.app=vllm-llama3-8b-instruct)" -}}
{{- end -}}
{{- if eq (toString $r.inferencePool.create) "false" -}}
{{- fail "router.inferencePool.create=false (llm-d's standalone mode) is not offered by this chart: it always creates the InferencePool llm-epp picks for. For a pool without one, run llm-epp with --endpoint-selector and --endpoint-target-ports (see the repository README)" -}}
{{- end -}}
{{- if not (has $r.inferencePool.failureMode (list "FailOpen" "FailClose")) -}}
{{- fail (printf "router.inferencePool.failureMode %q: the InferencePool CRD takes FailOpen or FailClose" (toString $r.inferencePool.failureMode)) -}}
{{- end -}}
{{- if not (has (toString ($r.modelServers.protocol | default "http")) (list "http")) -}}
{{- fail (printf "router.modelServers.protocol %q: llm-epp routes to HTTP model servers only" (toString $r.modelServers.protocol)) -}}
{{- end -}}
{{- if not (has (toString ($r.modelServers.type | default "vllm")) (list "vllm" "sglang" "trtllm-serve" "triton-tensorrt-llm" "tgi")) -}}
{{- fail (printf "router.modelServers.type %q: llm-epp reads the metrics of vllm, sglang, trtllm-serve, triton-tensorrt-llm and tgi (others: an engineConfigs entry of core-metrics-extractor in router.epp.pluginsCustomConfig)" (toString $r.modelServers.type)) -}}
{{- end -}}
{{- $ports := $r.modelServers.targetPorts | default list -}}
{{- if or (lt (len $ports) 1) (gt (len $ports) 8) -}}
{{- fail "router.modelServers.targetPorts: 1 to 8 entries of {number: <port>}" -}}
{{- end -}}
{{- range $ports -}}
{{- if not (and (kindIs "map" .) (hasKey . "number")) -}}
{{- fail "router.modelServers.targetPorts: each entry is {number: <port>}" -}}
{{- end -}}
{{- end -}}
{{- if lt (int $r.epp.replicas) 1 -}}
{{- fail "router.epp.replicas must be at least 1" -}}
{{- end -}}
{{- range $key := list "proxy" "tokenizer" "latencyPredictor" -}}
{{- if dig $key "enabled" false (deepCopy $r) -}}
{{- fail (printf "router.%s.enabled: llm-d Router's %s is not part of llm-epp's chart" $key $key) -}}
{{- end -}}
{{- end -}}
{{- if not (has (toString (dig "provider" "name" "" (deepCopy $r.monitoring)) | lower) (list "" "prometheusoperator")) -}}
{{- fail "router.monitoring.provider.name: only prometheusoperator (a ServiceMonitor) is supported; Google Managed Prometheus is not" -}}
{{- end -}}
{{- if include "llm-epp.metricsAuth" . -}}
{{- if not (hasKey ($r.epp.flags | default dict) "metrics-endpoint-auth-token-file") -}}
{{- fail "router.monitoring.prometheus.auth.enabled=true needs router.epp.flags.metrics-endpoint-auth-token-file: a file of accepted bearer tokens, mounted from a Secret with router.epp.volumes and router.epp.volumeMounts. This chart grants no TokenReview/SubjectAccessReview RBAC, so tokens are not checked against the API server (see the chart README)" -}}
{{- end -}}
{{- if and $r.monitoring.prometheus.enabled (not (dig "prometheus" "auth" "secretName" "" (deepCopy $r.monitoring))) -}}
{{- fail "router.monitoring.prometheus.auth.secretName is required with auth.enabled and prometheus.enabled: the Secret (key token) the ServiceMonitor sends as its bearer token" -}}
{{- end -}}
{{- end -}}
{{- if not (has (toString (dig "name" "none" (deepCopy (.Values.provider | default dict))) | lower) (list "" "none")) -}}
{{- fail "provider.name: only none; the GKE and Istio objects of llm-d's gateway chart are not rendered (for Istio see deploy/kubernetes/examples/gateway-istio.yaml)" -}}
{{- end -}}
{{- $flags := $r.epp.flags | default dict -}}
{{- range $key, $from := dict "pool-name" "the release name" "pool-namespace" "the release namespace" "pool-group" "the chart (inference.networking.k8s.io)" "config-file" "router.epp.pluginsConfigFile" "config-text" "router.epp.pluginsConfigFile" "grpc-port" "router.epp.extProcPort" "grpc-health-port" "router.epp.grpcHealthPort" "tracing" "router.tracing.enabled" "metrics-endpoint-auth" "router.monitoring.prometheus.auth.enabled" -}}
{{- if hasKey $flags $key -}}
{{- fail (printf "router.epp.flags.%s: the chart sets --%s from %s" $key $key $from) -}}
{{- end -}}
{{- end -}}
{{- $files := include "llm-epp.configFiles" . | fromYaml -}}
{{- if not (hasKey $files $r.epp.pluginsConfigFile) -}}
{{- fail (printf "router.epp.pluginsConfigFile %q is not a file of the ConfigMap (%s)" (toString $r.epp.pluginsConfigFile) (keys $files | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
