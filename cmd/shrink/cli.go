package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/shrink-ml/shrink/config"
	"github.com/shrink-ml/shrink/internal/gemm"
	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/runner"
	"github.com/shrink-ml/shrink/stages"
	_ "github.com/shrink-ml/shrink/stages/all"
)

// Exit codes, as the spec gives them.
const (
	exitOK          = 0
	exitFailed      = 1   // a stage failed at run time (or another run-time error)
	exitInvalid     = 2   // bad usage or an invalid recipe: nothing was run
	exitInterrupted = 130 // Ctrl-C (SIGINT) or SIGTERM stopped it: 128 + SIGINT, as shells report
)

// usageError marks errors that mean "bad usage" (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// app is one invocation's shared state.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	registry       *stages.Registry

	logFormat      string
	quiet, verbose bool
	log            zerolog.Logger
	logOut         io.Writer // where log writes
	tty            bool      // stderr is a terminal: progress bars
	bar            *progressBar
}

// Main runs the CLI and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The first Ctrl-C stops stages between batches (nothing half-written); after
	// it, signals get their default effect again, so a second one kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return mainContext(ctx, args, stdin, stdout, stderr)
}

// mainContext is Main under ctx, whose cancellation is an interrupt.
func mainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, registry: stages.Default}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ds pipeline.Diagnostics
	var vf validateFailed
	switch {
	case errors.As(err, &vf):
		return exitInvalid
	case errors.As(err, &ds):
		fmt.Fprintln(stderr, ds.Error())
		fmt.Fprintf(stderr, "%d problem(s) in the recipe; nothing was run\n", len(ds))
		return exitInvalid
	case errors.As(err, new(usageError)), errors.As(err, new(*runner.FlagError)), errors.As(err, new(*runner.NotRunFolderError)), errors.As(err, new(*runner.RunFolderError)),
		strings.HasPrefix(err.Error(), "unknown command "): // cobra's lookup, the one error without a hook
		fmt.Fprintf(stderr, "shrink: %v\n", err)
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitInvalid
	case errors.Is(err, errAlreadyReported):
		return exitFailed
	case errors.As(err, new(*runner.MemoryError)):
		fmt.Fprintf(stderr, "shrink: %v\n", err) // the recipe, not its usage: nothing ran
		return exitInvalid
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "shrink: interrupted; run the same command again to resume: finished stages are stored, and a training stage resumes after its last finished epoch ('shrink plan' shows where)")
		return exitInterrupted
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "shrink: interrupted: %v\n", err)
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "shrink: %v\n", err)
	return exitFailed
}

// errAlreadyReported means the command printed its own failure.
var errAlreadyReported = errors.New("failed")

// errInterrupted means a signal stopped the run (exit 130).
var errInterrupted = errors.New("interrupted")

// usageArgs makes every command's argument check report bad usage (exit 2):
// cobra's own errors carry no type to recognize them by. (Flag errors come
// through SetFlagErrorFunc; an unknown command is caught in exitCode.)
func usageArgs(root *cobra.Command) {
	for _, c := range root.Commands() {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "shrink",
		Short: "Make neural networks smaller and faster with declarative YAML recipes",
		Long: `shrink runs compression recipes: YAML files describing a DAG of stages
(train, prune, quantize, qat, lowrank, distill, select) over a model. Every stage
writes a safetensors checkpoint; a stage whose inputs did not change is never run
twice, and a crash loses nothing.

Start with:
  shrink run recipes/quickstart.yaml       train LeNet-300-100 on MNIST
  shrink plan recipes/quickstart.yaml      what would run, and why
  shrink validate recipes/*.yaml           check recipes without running them
  shrink inspect runs/quickstart/train/model.safetensors

Recipes are documented in docs/RECIPES.md; 'shrink schema' prints their JSON Schema.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return a.setupLogging()
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if ive := new(pflag.InvalidValueError); errors.As(err, &ive) && errors.Unwrap(ive) != nil {
			err = errors.Unwrap(ive) // the value's own message, which names the flag
		}
		return usageError{err}
	})
	pf := root.PersistentFlags()
	enumVar(pf, &a.logFormat, "log-format", cmp.Or(os.Getenv("SHRINK_LOG_FORMAT"), "console"), []string{"console", "json"}, "log format: console (readable) or json (one object per line); default $SHRINK_LOG_FORMAT, else console")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "only warnings and errors; no progress bars")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "debug logging")
	root.AddCommand(a.runCommand(), a.planCommand(), a.validateCommand(), a.inspectCommand(), a.evalCommand(), a.predictCommand(), a.benchCommand(), a.modelCommand(), a.schemaCommand(),
		a.gcCommand(), a.diffCommand())
	root.AddCommand(a.graphCommand())
	root.AddCommand(a.exportCommand(), a.reportCommand())
	root.AddCommand(a.exportWorkflowCommand())
	root.Version = versionLine(runner.Version())
	root.SetVersionTemplate("shrink {{.Version}}\n")
	usageArgs(root)
	return root
}

// versionLine is what --version prints: the module version and commit, or,
// for a build that recorded neither (go run), what to do to have them.
func versionLine(version, revision string) string {
	if version == "(devel)" || version == "" {
		version = "development build"
	}
	if revision == "" {
		return version + " (no commit recorded: 'go run' omits it; build with 'go tool task build' or 'go install ./cmd/shrink')"
	}
	return version + " " + revision
}

func (a *app) setupLogging() error {
	level := zerolog.InfoLevel
	switch {
	case a.quiet && a.verbose:
		return usagef("--quiet and --verbose contradict each other")
	case a.quiet:
		level = zerolog.WarnLevel
	case a.verbose:
		level = zerolog.DebugLevel
	}
	width := 0
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a.tty = true
		width, _, _ = term.GetSize(int(f.Fd()))
	}
	var w io.Writer
	switch a.logFormat {
	case "json":
		w = a.stderr
	case "console":
		a.bar = &progressBar{out: a.stderr, enabled: a.tty && !a.quiet && os.Getenv("SHRINK_NO_PROGRESS") == "", width: width}
		w = zerolog.ConsoleWriter{Out: a.bar, NoColor: !a.tty, TimeFormat: "15:04:05"}
	default: // only the environment's default bypasses the flag's check
		return usagef("SHRINK_LOG_FORMAT must be console or json, not %q", a.logFormat)
	}
	a.log, a.logOut = zerolog.New(w).Level(level).With().Timestamp().Logger(), w
	return a.checkToolEnv()
}

// checkToolEnv checks the SHRINK_ variables that configure shrink itself: a
// value shrink cannot use is bad usage, not silently ignored.
func (a *app) checkToolEnv() error {
	if s := os.Getenv("SHRINK_THREADS"); s != "" {
		if n, err := strconv.Atoi(s); err != nil || n < 1 {
			return usagef("SHRINK_THREADS=%s: must be a whole number of threads, 1 or more (unset: every core)", s)
		}
	}
	if want := os.Getenv("SHRINK_GEMM"); want != "" {
		kernels := []string{"avx512", "avx2", "purego"}
		if !slices.Contains(kernels, want) {
			return usagef("SHRINK_GEMM=%s: must be one of %s (unset: the fastest this CPU has)%s", want, strings.Join(kernels, ", "), config.DidYouMean(want, kernels))
		}
		if got := gemm.Impl(); got != want {
			a.log.Warn().Msgf("SHRINK_GEMM=%s: this CPU or build lacks those kernels; using %s", want, got)
		}
	}
	return nil
}

// loadRecipe loads and validates a recipe with the command's overrides.
func (a *app) loadRecipe(path string, sets []string) (*pipeline.Recipe, error) {
	r, err := pipeline.Load(path, a.registry, pipeline.Options{Sets: sets, Env: os.Environ(), CheckFiles: true})
	if err != nil && !pipeline.IsDiagnostics(err) {
		return nil, usageError{err}
	}
	if r != nil {
		for _, w := range r.Warnings {
			a.log.Warn().Msg(w.String())
		}
	}
	return r, err
}
