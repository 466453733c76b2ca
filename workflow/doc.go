// Package workflow exports a recipe's DAG to a workflow engine, so a cluster
// runs its stages: one task per expanded stage, each a process running
//
//	shrink run RECIPE --only STAGE --cache-dir s3://BUCKET/PREFIX
//
// that fetches the stage's inputs from the shared store and publishes its
// output there (runner.Store with a Remote). The engine schedules; the store
// makes retries and reruns safe. Argo Workflows is the engine supported:
//
//	w, err := workflow.Argo(recipe, workflow.Options{Image: "ghcr.io/x/shrink:1", CacheDir: "s3://b/p", ...})
//	out, err := w.Marshal(recipe.File)
//
// The package never imports gorgonia: exporting is as quick as validating.
package workflow
