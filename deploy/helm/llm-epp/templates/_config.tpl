{{/*
default-plugins.yaml: GAIE's default scheduling, as deploy/kubernetes/base and
deploy/config/gaie-default.yaml run it (queue 2, KV-cache 2, prefix-cache 3,
max-score picker), with the model-server metrics source and the engine
written out from router.epp.metricsDataSource and router.modelServers.type,
and the request parsers of router.epp.parsers.
*/}}
{{- define "llm-epp.defaultPlugins" -}}
{{- $epp := .Values.router.epp -}}
{{- $source := $epp.metricsDataSource | default dict -}}
{{- $engine := .Values.router.modelServers.type | default "vllm" -}}
{{- $parsers := $epp.parsers | default list -}}
{{- range $parsers -}}
{{- if not (regexMatch "^[a-z0-9][-a-z0-9]*$" (toString .)) -}}
{{- fail (printf "router.epp.parsers: %q is not a plugin type name" (toString .)) -}}
{{- end -}}
{{- end -}}
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
  parameters:
    autoTune: true
    blockSizeTokens: 16
    maxPrefixBlocksToMatch: 8192
    lruCapacityPerServer: 31250
- type: max-score-picker
- type: single-profile-handler
- type: metrics-data-source
  parameters:
    scheme: {{ $source.scheme | default "http" | quote }}
    path: {{ $source.path | default "/metrics" | quote }}
    insecureSkipVerify: {{ ternary $source.insecureSkipVerify true (hasKey $source "insecureSkipVerify") }}
- type: core-metrics-extractor
{{- if ne $engine "vllm" }}
  parameters:
    defaultEngine: {{ $engine | quote }}
{{- end }}
{{- range $parsers }}
- type: {{ . }}
{{- end }}
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: max-score-picker
{{- if $parsers }}
requestHandler:
  parsers:
{{- range $parsers }}
  - pluginRef: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
payload-agnostic.yaml: for request bodies llm-epp should not read. The
passthrough parser leaves the body alone, so nothing body-based (prefix
cache) can score; endpoints are picked by their in-flight load, and a
session sticks to the endpoint it started on.
*/}}
{{- define "llm-epp.payloadAgnostic" -}}
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: passthrough-parser
- type: active-request-scorer
- type: session-affinity-scorer
requestHandler:
  parsers:
  - pluginRef: passthrough-parser
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: active-request-scorer
    weight: 1
  - pluginRef: session-affinity-scorer
    weight: 1
{{- end -}}
