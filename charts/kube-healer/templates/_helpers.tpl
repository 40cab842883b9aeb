{{- define "kube-healer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-healer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kube-healer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-healer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-healer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kube-healer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-healer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-healer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- /* Where RunJob's node jobs run: their namespace and ServiceAccount. */}}
{{- define "kube-healer.jobsNamespace" -}}
{{- default (printf "%s-jobs" (include "kube-healer.fullname" .)) .Values.nodeJobs.namespace }}
{{- end }}

{{- define "kube-healer.jobsServiceAccount" -}}
{{- default (printf "%s-node-jobs" (include "kube-healer.fullname" .)) .Values.nodeJobs.serviceAccount }}
{{- end }}

{{- /* Namespaces no policy touches unless it names them, and the admission policy refuses to
name: the configured ones, the operator's own and its jobs namespace. A comma-separated list. */}}
{{- define "kube-healer.protectedNamespaces" -}}
{{- $all := append .Values.operator.protectedNamespaces .Release.Namespace }}
{{- if .Values.nodeJobs.enabled }}
{{- $all = append $all (include "kube-healer.jobsNamespace" .) }}
{{- end }}
{{- $all | uniq | join "," }}
{{- end }}

{{- /* The Pod Security level the jobs namespace enforces: as set, or what the defined NodeJobs
need. Host namespaces, hostPath volumes, host ports, privileged containers and added
capabilities are what the baseline level forbids; any of them in a definition needs
privileged. */}}
{{- define "kube-healer.jobsPodSecurity" -}}
{{- if .Values.nodeJobs.podSecurity }}
{{- .Values.nodeJobs.podSecurity }}
{{- else }}
{{- $level := "baseline" }}
{{- range $name, $job := .Values.nodeJobs.definitions }}
{{- $spec := $job.podSpec | default dict }}
{{- if or $spec.hostPID $spec.hostIPC $spec.hostNetwork }}
{{- $level = "privileged" }}
{{- end }}
{{- range $spec.volumes | default list }}
{{- if .hostPath }}
{{- $level = "privileged" }}
{{- end }}
{{- end }}
{{- range concat ($spec.containers | default list) ($spec.initContainers | default list) }}
{{- $sc := .securityContext | default dict }}
{{- if or $sc.privileged (($sc.capabilities | default dict).add) }}
{{- $level = "privileged" }}
{{- end }}
{{- range .ports | default list }}
{{- if .hostPort }}
{{- $level = "privileged" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $level }}
{{- end }}
{{- end }}
