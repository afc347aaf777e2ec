{{/* Chart name, overridable. */}}
{{- define "probegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix for object names: fullnameOverride, else the release name when it
already mentions the chart name, else "<release>-<chart>".
*/}}
{{- define "probegate.fullname" -}}
{{- $name := include "probegate.name" . -}}
{{- $full := "" -}}
{{- if .Values.fullnameOverride -}}
{{- $full = .Values.fullnameOverride -}}
{{- else if contains $name .Release.Name -}}
{{- $full = .Release.Name -}}
{{- else -}}
{{- $full = printf "%s-%s" .Release.Name $name -}}
{{- end -}}
{{- $full | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "probegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "probegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "probegate.labels" -}}
{{ include "probegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
The webhook's name in the MutatingWebhookConfiguration: the API server's
apiserver_admission_webhook_fail_open_count labels its count with it, so the alert
rules select by it too.
*/}}
{{- define "probegate.webhookName" -}}
mutate.probegate.io
{{- end -}}

{{- define "probegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "probegate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "probegate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}

{{/* DNS names the serving certificate must cover. */}}
{{- define "probegate.dnsNames" -}}
{{- $svc := include "probegate.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/* Name of the Secret holding tls.crt / tls.key for the server. */}}
{{- define "probegate.tlsSecretName" -}}
{{- if eq .Values.certificates.source "existingSecret" -}}
{{- required "certificates.existingSecret.secretName is required when certificates.source=existingSecret" .Values.certificates.existingSecret.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "probegate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "probegate.validateCertSource" -}}
{{- $src := .Values.certificates.source -}}
{{- if not (has $src (list "certManager" "existingSecret" "generate")) -}}
{{- fail (printf "certificates.source must be one of certManager, existingSecret, generate (got %q)" $src) -}}
{{- end -}}
{{- if eq $src "existingSecret" -}}
{{- $es := .Values.certificates.existingSecret -}}
{{- if or (not $es.secretName) (not $es.caBundle) -}}
{{- fail "certificates.source=existingSecret needs certificates.existingSecret.secretName (a TLS Secret in the release namespace) and certificates.existingSecret.caBundle (base64 PEM of its CA)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
TLS material for certificates.source=generate, as a dict with base64 values
(ca.crt, tls.crt, tls.key). The Secret from an earlier release is reused when
`lookup` finds it (only against a live cluster: `helm template` and
`--dry-run` without cluster access always generate). Computed once per render
and cached in .Values, so the Secret, the webhook caBundle and the Deployment's
checksum annotation all see the same certificate.
*/}}
{{- define "probegate.generatedTLS" -}}
{{- if not (hasKey .Values "__probegateGeneratedTLS") -}}
{{- $secretName := include "probegate.tlsSecretName" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName -}}
{{- $data := dict -}}
{{- $reuse := false -}}
{{- if and $existing (not .Values.certificates.generate.regenerate) -}}
{{- $d := $existing.data | default dict -}}
{{- if and (index $d "ca.crt") (index $d "tls.crt") (index $d "tls.key") -}}
{{- $reuse = true -}}
{{- $_ := set $data "ca.crt" (index $d "ca.crt") -}}
{{- $_ := set $data "tls.crt" (index $d "tls.crt") -}}
{{- $_ := set $data "tls.key" (index $d "tls.key") -}}
{{- end -}}
{{- end -}}
{{- if not $reuse -}}
{{- $days := int .Values.certificates.generate.validityDays -}}
{{- $ca := genCA (printf "%s-ca" (include "probegate.fullname" .)) $days -}}
{{- $dns := include "probegate.dnsNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (index $dns 2) nil $dns $days $ca -}}
{{- $_ := set $data "ca.crt" ($ca.Cert | b64enc) -}}
{{- $_ := set $data "tls.crt" ($cert.Cert | b64enc) -}}
{{- $_ := set $data "tls.key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "__probegateGeneratedTLS" $data -}}
{{- end -}}
{{- toJson (get .Values "__probegateGeneratedTLS") -}}
{{- end -}}

{{/* base64 PEM CA for the webhook's clientConfig.caBundle ("" for certManager). */}}
{{- define "probegate.caBundle" -}}
{{- $src := .Values.certificates.source -}}
{{- if eq $src "generate" -}}
{{- index (include "probegate.generatedTLS" . | fromJson) "ca.crt" -}}
{{- else if eq $src "existingSecret" -}}
{{- required "certificates.existingSecret.caBundle (base64 PEM CA) is required when certificates.source=existingSecret" .Values.certificates.existingSecret.caBundle -}}
{{- end -}}
{{- end -}}

{{/* --namespace-annotation args from .Values.defaultPolicy. */}}
{{- define "probegate.defaultPolicyArgs" -}}
{{- $known := list "inject" "probes" "probe-handler" "liveness-path" "readiness-path" "startup-path" "port" "scheme" "initial-delay-seconds" "period-seconds" "timeout-seconds" "failure-threshold" "readiness-gates" "metrics-coupling" "metrics-ports" -}}
{{- range $key, $value := .Values.defaultPolicy }}
{{- $k := trimPrefix "probegate.io/" $key }}
{{- if not (has $k $known) }}
{{- fail (printf "defaultPolicy: unknown key %q (known: %s)" $key (join ", " $known)) }}
{{- end }}
{{- if kindIs "invalid" $value }}
{{- fail (printf "defaultPolicy.%s: value must not be null" $k) }}
{{- end }}
- {{ printf "--namespace-annotation=probegate.io/%s=%v" $k $value | quote }}
{{- end }}
{{- end -}}

{{/*
The ConfigMap holding the user's catalogue: the user's own, or the chart's when entries are
given; empty when there is none.
*/}}
{{- define "probegate.catalogueConfigMap" -}}
{{- if .Values.catalogue.configMap -}}
{{- .Values.catalogue.configMap -}}
{{- else if .Values.catalogue.entries -}}
{{- printf "%s-catalogue" (include "probegate.fullname" .) -}}
{{- end -}}
{{- end }}

{{/* A ServiceMonitor's or PodMonitor's interval and scrapeTimeout, those that are set. */}}
{{- define "probegate.scrapeTiming" -}}
{{- with .interval }}
interval: {{ . | quote }}
{{- end }}
{{- with .scrapeTimeout }}
scrapeTimeout: {{ . | quote }}
{{- end }}
{{- end }}
