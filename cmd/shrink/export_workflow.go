package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/workflow"
)

func (a *app) exportWorkflowCommand() *cobra.Command {
	var engine string
	var sets, env []string
	opt := workflow.Options{}
	cmd := &cobra.Command{
		Use:   "export-workflow RECIPE --engine argo --image IMAGE --cache-dir s3://BUCKET/PREFIX",
		Short: "Print an Argo Workflow that runs the recipe on a cluster, one stage per task",
		Long: `Print (as YAML, on stdout) an Argo Workflow whose DAG has one task per stage of
the expanded recipe, with the recipe's edges as dependencies. Each task runs

  shrink run RECIPE --only STAGE --cache-dir s3://BUCKET/PREFIX

in the image: it fetches the stage's inputs from the shared store, runs the
stage and publishes its result there. The recipe travels inside the workflow,
byte for byte (a raw input artifact), with --set and SHRINK_ recipe overrides
passed on. A stage's resources: {cpu, memory} become its pod's requests.

Tasks read AWS_* variables from the Secret --secret names (optional in the pod:
without it, credentials come from the pod's role); --env adds others, such as
AWS_ENDPOINT_URL for an S3-compatible store. Failed tasks are retried (--retries);
a retried or resubmitted task finds finished stages in the store and reruns
nothing. docs/DISTRIBUTED.md explains the setup.`,
		Example: `  shrink export-workflow recipes/sweep-select.yaml --engine argo \
      --image ghcr.io/shrink-ml/shrink:latest --cache-dir s3://ml-cache/shrink > sweep.argo.yaml
  argo submit sweep.argo.yaml --watch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opt.Image == "":
				return usagef("--image is required: the container image holding shrink, built from the Dockerfile")
			case opt.CacheDir == "":
				return usagef("--cache-dir is required: the s3://BUCKET/PREFIX store every task shares")
			}
			if engine != "argo" {
				return usagef("--engine %q: the engine supported is argo", engine)
			}
			for _, kv := range env {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return usagef("--env %q: want NAME=VALUE", kv)
				}
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			recipe, err := pipeline.Parse(args[0], src, a.registry, pipeline.Options{Sets: sets, Env: os.Environ()})
			if err != nil {
				if !pipeline.IsDiagnostics(err) {
					err = usageError{err}
				}
				return err
			}
			if files := recipe.Files(); len(files) > 0 {
				var list []string
				for _, f := range files {
					list = append(list, fmt.Sprintf("%s (%s)", f.Path, f.Key))
				}
				fmt.Fprintf(a.stderr, "shrink: warning: the recipe reads files that do not travel with the workflow: %s; "+
					"the tasks must find them at the same paths (bake them into the image or mount a volume)\n", strings.Join(list, ", "))
			}
			opt.RecipeFile, opt.Recipe, opt.Sets = args[0], src, sets
			opt.Env = append(pipeline.RecipeEnv(os.Environ()), env...)
			w, err := workflow.Argo(recipe, opt)
			if err != nil {
				return usageError{err}
			}
			out, err := w.Marshal(args[0])
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&engine, "engine", "argo", "the workflow engine: argo")
	f.StringVar(&opt.Image, "image", "", "the container image holding shrink (built from the Dockerfile)")
	f.StringVar(&opt.CacheDir, "cache-dir", "", "the store every task shares: s3://BUCKET/PREFIX")
	f.StringArrayVar(&sets, "set", nil, "override a recipe key, as for run (passed to every task)")
	f.StringArrayVar(&env, "env", nil, "NAME=VALUE set in every task's container, e.g. AWS_ENDPOINT_URL=http://minio:9000 (repeatable)")
	f.StringVar(&opt.Secret, "secret", "shrink-s3", "a Secret whose keys become the tasks' environment (AWS credentials); empty for none")
	f.StringVar(&opt.ServiceAccount, "service-account", "", "the service account the pods run as (for a cloud role)")
	f.IntVar(&opt.Retries, "retries", 2, "retries of a failed task")
	f.IntVar(&opt.Parallelism, "parallelism", 0, "tasks running at once (0: as many as the cluster fits)")
	return cmd
}
