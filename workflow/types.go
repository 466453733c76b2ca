package workflow

// The subset of Argo's Workflow resource (argoproj.io/v1alpha1) that shrink
// writes, with Argo's field names. Argo's schema types counts such as a retry
// limit as strings (IntOrString), and so do these.

// Workflow is an Argo Workflow.
type Workflow struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`
}

// Metadata is the Workflow's object metadata.
type Metadata struct {
	GenerateName string            `yaml:"generateName"`
	Labels       map[string]string `yaml:"labels,omitempty"`
	Annotations  map[string]string `yaml:"annotations,omitempty"`
}

// Spec is the Workflow's spec.
type Spec struct {
	Entrypoint         string     `yaml:"entrypoint"`
	Parallelism        int        `yaml:"parallelism,omitempty"`
	ServiceAccountName string     `yaml:"serviceAccountName,omitempty"`
	Volumes            []Volume   `yaml:"volumes,omitempty"`
	Templates          []Template `yaml:"templates"`
}

// Volume is a pod volume; shrink uses only emptyDir scratch space.
type Volume struct {
	Name     string    `yaml:"name"`
	EmptyDir *struct{} `yaml:"emptyDir,omitempty"`
}

// Template is a DAG or a container template.
type Template struct {
	Name          string         `yaml:"name"`
	Inputs        *Inputs        `yaml:"inputs,omitempty"`
	DAG           *DAG           `yaml:"dag,omitempty"`
	Container     *Container     `yaml:"container,omitempty"`
	RetryStrategy *RetryStrategy `yaml:"retryStrategy,omitempty"`
}

// DAG is a template's task graph.
type DAG struct {
	Tasks []Task `yaml:"tasks"`
}

// Task is one node of the DAG.
type Task struct {
	Name         string    `yaml:"name"`
	Template     string    `yaml:"template"`
	Dependencies []string  `yaml:"dependencies,omitempty"`
	Arguments    Arguments `yaml:"arguments"`
}

// Arguments are a task's parameters.
type Arguments struct {
	Parameters []Parameter `yaml:"parameters"`
}

// Parameter is a named string.
type Parameter struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value,omitempty"`
}

// Inputs are a template's parameters and artifacts.
type Inputs struct {
	Parameters []Parameter `yaml:"parameters,omitempty"`
	Artifacts  []Artifact  `yaml:"artifacts,omitempty"`
}

// Artifact is an input file; shrink uses raw artifacts, whose content is in
// the workflow itself.
type Artifact struct {
	Name string       `yaml:"name"`
	Path string       `yaml:"path"`
	Raw  *RawArtifact `yaml:"raw,omitempty"`
}

// RawArtifact is a file's content.
type RawArtifact struct {
	Data string `yaml:"data"`
}

// Container is a template's container.
type Container struct {
	Image        string        `yaml:"image"`
	Command      []string      `yaml:"command"`
	Args         []string      `yaml:"args"`
	Env          []EnvVar      `yaml:"env,omitempty"`
	EnvFrom      []EnvFrom     `yaml:"envFrom,omitempty"`
	Resources    *Resources    `yaml:"resources,omitempty"`
	VolumeMounts []VolumeMount `yaml:"volumeMounts,omitempty"`
}

// EnvVar is an environment variable.
type EnvVar struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// EnvFrom takes environment variables from a Secret's keys.
type EnvFrom struct {
	SecretRef *SecretRef `yaml:"secretRef,omitempty"`
}

// SecretRef names a Secret; an optional one may be absent.
type SecretRef struct {
	Name     string `yaml:"name"`
	Optional bool   `yaml:"optional,omitempty"`
}

// Resources are a container's requests.
type Resources struct {
	Requests map[string]string `yaml:"requests,omitempty"`
}

// VolumeMount mounts a volume in the container.
type VolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

// RetryStrategy says when and how often Argo retries a failed task.
type RetryStrategy struct {
	Limit       string   `yaml:"limit"`
	RetryPolicy string   `yaml:"retryPolicy"`
	Expression  string   `yaml:"expression,omitempty"`
	Backoff     *Backoff `yaml:"backoff,omitempty"`
}

// Backoff spaces the retries.
type Backoff struct {
	Duration    string `yaml:"duration"`
	Factor      string `yaml:"factor"`
	MaxDuration string `yaml:"maxDuration,omitempty"`
}
