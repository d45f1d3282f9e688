{{/* Names and labels shared by every template. */}}

{{- define "gpuwork.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's resource name: the release name alone when it already holds the chart's name. */}}
{{- define "gpuwork.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gpuwork.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpuwork.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gpuwork.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gpuwork.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: exporter
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "gpuwork.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gpuwork.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gpuwork.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the web config Secret is mounted, and the file the exporter reads. */}}
{{- define "gpuwork.webConfigDir" -}}/etc/gpuwork/web{{- end -}}

{{/* The namespace of a monitoring object: its own setting, else the release's. */}}
{{- define "gpuwork.monitorNamespace" -}}
{{- default .root.Release.Namespace .namespace -}}
{{- end -}}

{{/* scheme, tlsConfig and basicAuth of a scrape endpoint, when /metrics is protected. */}}
{{- define "gpuwork.scrapeAuth" -}}
{{- if .Values.webConfig.secretName }}
{{- with .Values.webConfig.scrape.scheme }}
scheme: {{ . }}
{{- end }}
{{- with .Values.webConfig.scrape.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.webConfig.scrape.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The generated rules name the scrape job gpuwork-exporter: every monitor sets it. */}}
{{- define "gpuwork.jobRelabeling" -}}
- action: replace
  targetLabel: job
  replacement: {{ .Values.monitoring.jobName | quote }}
{{- end -}}
