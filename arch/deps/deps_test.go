package deps_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/arch"
	"github.com/shrink-ml/shrink/arch/deps"
	"github.com/shrink-ml/shrink/internal/testkit"
	_ "github.com/shrink-ml/shrink/nn" // the layer types
)

type keys = map[string]any

func layer(name, typ string, k keys, from ...string) arch.LayerSpec {
	return arch.NewLayer(name, typ, k, from...)
}

// The small graphs of the tests, shared with stages/prune, which checks the
// pruned models' numbers.
var (
	residual, separable, concat, flatten = graph(0), graph(1), graph(2), graph(3)
)

func graph(i int) arch.Spec { return testkit.Graphs()[i].Spec }

func analyze(t *testing.T, s arch.Spec) *deps.Deps {
	t.Helper()
	g, err := s.Graph()
	if err != nil {
		t.Fatal(err)
	}
	return deps.Analyze(g)
}

// slicesOf prints a channel's slices, one string each.
func slicesOf(ch deps.Channel) []string {
	var out []string
	for _, s := range ch.Slices {
		out = append(out, s.String())
	}
	return out
}

func TestGroups(t *testing.T) {
	tests := []struct {
		name string
		spec arch.Spec
		// want: per group, its name, channel count, blocked or not, and one
		// channel's slices.
		want []group
	}{
		{"residual block", residual, []group{
			{name: "input", channels: 2, blocked: "network's input"},
			{name: "stem", channels: 4, channel: 2, slices: []string{
				"stem.weight[2:3] (out)",
				"stem_bn.bias[2:3] (norm)", "stem_bn.running_mean[2:3] (norm)", "stem_bn.running_var[2:3] (norm)", "stem_bn.weight[2:3] (norm)",
				"block.conv1.weight[:, 2:3] (in)",
				"block.conv2.weight[2:3] (out)",
				"block.bn2.bias[2:3] (norm)", "block.bn2.running_mean[2:3] (norm)", "block.bn2.running_var[2:3] (norm)", "block.bn2.weight[2:3] (norm)",
				"fc.weight[:, 2:3] (in)",
			}},
			{name: "block.conv1", channels: 5, channel: 4, slices: []string{
				"block.conv1.weight[4:5] (out)",
				"block.bn1.bias[4:5] (norm)", "block.bn1.running_mean[4:5] (norm)", "block.bn1.running_var[4:5] (norm)", "block.bn1.weight[4:5] (norm)",
				"block.conv2.weight[:, 4:5] (in)",
			}},
			{name: "fc", channels: 3, blocked: "layer fc is the output layer: its units are the classes"},
		}},
		{"depthwise separable", separable, []group{
			{name: "input", channels: 1, blocked: "network's input"},
			// The depthwise conv's two outputs per input channel go with it.
			{name: "conv", channels: 4, channel: 1, slices: []string{
				"conv.bias[1:2] (out)", "conv.weight[1:2] (out)",
				"dw.bias[2:4] (out)", "dw.weight[2:4] (out)",
				"dw_bn.bias[2:4] (norm)", "dw_bn.running_mean[2:4] (norm)", "dw_bn.running_var[2:4] (norm)", "dw_bn.weight[2:4] (norm)",
				"pw.weight[:, 2:4] (in)",
			}},
			// pw's channel 5 is fc's inputs 5·9 .. 5·9+8 after the 3x3 pooled map.
			{name: "pw", channels: 6, channel: 5, slices: []string{
				"pw.bias[5:6] (out)", "pw.weight[5:6] (out)", "fc.weight[:, 45:54] (in)",
			}},
			{name: "fc", channels: 3, blocked: "output layer"},
		}},
		{"concat", concat, []group{
			{name: "input", channels: 1, blocked: "network's input"},
			// a's channels go to b directly and to c at their own index.
			{name: "a", channels: 3, channel: 2, slices: []string{
				"a.bias[2:3] (out)", "a.weight[2:3] (out)", "b.weight[:, 2:3] (in)", "c.weight[:, 2:3] (in)",
			}},
			// b's channel 1 is the concat's channel 3 + 1 = 4.
			{name: "b", channels: 2, channel: 1, slices: []string{
				"b.bias[1:2] (out)", "b.weight[1:2] (out)", "c.weight[:, 4:5] (in)",
			}},
			{name: "c", channels: 4, channel: 3, slices: []string{
				"c.bias[3:4] (out)", "c.weight[3:4] (out)", "fc.weight[:, 27:36] (in)",
			}},
			{name: "fc", channels: 2, blocked: "output layer"},
		}},
		{"flatten into a linear layer", flatten, []group{
			{name: "input", channels: 1, blocked: "network's input"},
			{name: "conv", channels: 3, channel: 1, slices: []string{
				"conv.bias[1:2] (out)", "conv.weight[1:2] (out)", "fc1.weight[:, 9:18] (in)",
			}},
			{name: "fc1", channels: 5, channel: 0, slices: []string{
				"fc1.bias[0:1] (out)", "fc1.weight[0:1] (out)", "fc2.weight[:, 0:1] (in)",
			}},
			{name: "fc2", channels: 3, blocked: "output layer"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := analyze(t, tt.spec)
			if len(d.Groups) != len(tt.want) {
				for _, g := range d.Groups {
					t.Log(g)
				}
				t.Fatalf("%d groups, want %d", len(d.Groups), len(tt.want))
			}
			for i, w := range tt.want {
				g := d.Groups[i]
				if g.Name != w.name || len(g.Channels) != w.channels {
					t.Errorf("group %d is %s with %d channels, want %s with %d", i, g.Name, len(g.Channels), w.name, w.channels)
					continue
				}
				if (w.blocked == "") != (g.Blocked == "") || !strings.Contains(g.Blocked, w.blocked) {
					t.Errorf("group %s blocked %q, want %q", g.Name, g.Blocked, w.blocked)
				}
				if w.slices != nil {
					if got := slicesOf(g.Channels[w.channel]); !slices.Equal(got, w.slices) {
						t.Errorf("group %s channel %d:\n got %q\nwant %q", g.Name, w.channel, got, w.slices)
					}
				}
			}
		})
	}
}

type group struct {
	name     string
	channels int
	blocked  string
	channel  int
	slices   []string
}

// TestBlocked: the network's input and layers whose channels the rules do not
// follow keep their groups whole, with a reason.
func TestBlocked(t *testing.T) {
	grouped := arch.Spec{Input: arch.Shape{4, 5, 5}, Classes: 2, Layers: []arch.LayerSpec{
		layer("conv", "conv2d", keys{"out": 4, "kernel": 1}),
		layer("g", "conv2d", keys{"out": 4, "kernel": 1, "groups": 2}),
		layer("", "flatten", nil),
		layer("fc", "linear", keys{"out": 2}),
	}}
	d := analyze(t, grouped)
	for _, name := range []string{"conv", "g"} {
		gs := d.GroupsOf(name)
		if len(gs) != 1 || !strings.Contains(gs[0].Blocked, "layer g is a grouped convolution (groups 2 of 4 channels)") {
			t.Errorf("%s: groups %v, want one blocked by the grouped convolution", name, gs)
		}
	}
	// The mlp's first layer reads the input, which no removal touches, but
	// its own units are free.
	mlp := arch.Spec{Arch: arch.MLP, Inputs: 6, Hidden: []int{4}, Classes: 2}
	d = analyze(t, mlp)
	if gs := d.GroupsOf("fc1"); len(gs) != 1 || gs[0].Blocked != "" || len(gs[0].Channels) != 4 {
		t.Errorf("mlp fc1: %v", gs)
	}
	for _, g := range d.Groups {
		if slices.Contains(g.Layers(), "fc1") && g.Name != "fc1" && g.Blocked == "" {
			t.Errorf("the input's group %s is prunable", g)
		}
	}
}

// TestResNetGroups: a ResNet-20 has one group per residual stage (the stem or
// the downsample convolutions, each stage's conv2s and the next stage's
// readers) and one per block's inner conv1.
func TestResNetGroups(t *testing.T) {
	d := analyze(t, arch.Spec{Arch: arch.ResNet, Depth: 20, Input: arch.Shape{1, 28, 28}, Classes: 10})
	var names []string
	for _, g := range d.Groups {
		if g.Blocked == "" {
			names = append(names, g.Name)
		}
	}
	want := []string{"conv1", "layer1.0.conv1", "layer1.1.conv1", "layer1.2.conv1", "layer2.0.conv1", "layer2.0.conv2",
		"layer2.1.conv1", "layer2.2.conv1", "layer3.0.conv1", "layer3.0.conv2", "layer3.1.conv1", "layer3.2.conv1"}
	if !slices.Equal(names, want) {
		t.Fatalf("prunable groups %q, want %q", names, want)
	}
	stage2 := d.GroupsOf("layer2.0.downsample.0")[0]
	wantProducers := []string{"layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2", "layer2.2.conv2"}
	if p := stage2.Producers(); !slices.Equal(p, wantProducers) || len(stage2.Channels) != 32 {
		t.Errorf("stage 2's group: producers %q (%d channels), want %q (32)", p, len(stage2.Channels), wantProducers)
	}
}

// TestNarrow: widths go to preset keys for mlp and lenet5 (their JSON is what
// checkpoints store), and into an explicit layer list otherwise, a depthwise
// convolution's groups following its channels.
func TestNarrow(t *testing.T) {
	t.Run("lenet5", func(t *testing.T) {
		spec := arch.Spec{Arch: arch.LeNet5, Classes: 10}
		d := analyze(t, spec)
		g := d.GroupsOf("conv2")[0]
		out, err := d.Narrow(spec, deps.Removal{g: {0, 3, 5}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Arch != arch.LeNet5 || !slices.Equal(out.Channels, []int{6, 13}) {
			t.Errorf("got %s", out.JSON())
		}
	})
	t.Run("depthwise separable", func(t *testing.T) {
		d := analyze(t, separable)
		g := d.GroupsOf("conv")[0]
		out, err := d.Narrow(separable, deps.Removal{g: {1}})
		if err != nil {
			t.Fatal(err)
		}
		gr, err := out.Graph()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]int{"conv.weight": {3, 1, 3, 3}, "dw.weight": {6, 1, 3, 3}, "dw_bn.running_var": {6}, "pw.weight": {6, 6, 1, 1}}
		for _, n := range gr.Nodes {
			for _, ts := range n.Tensors() {
				if w, ok := want[n.Name+"."+ts.Suffix]; ok && !slices.Equal(ts.Shape, w) {
					t.Errorf("%s.%s is %v, want %v", n.Name, ts.Suffix, ts.Shape, w)
				}
			}
		}
		if !strings.Contains(out.JSON(), `"groups":3`) {
			t.Errorf("dw's groups did not follow: %s", out.JSON())
		}
	})
	t.Run("resnet becomes a list", func(t *testing.T) {
		spec := arch.Spec{Arch: arch.ResNet, Depth: 8, Width: 4, Input: arch.Shape{1, 12, 12}, Classes: 10}
		d := analyze(t, spec)
		g := d.GroupsOf("conv1")[0]
		out, err := d.Narrow(spec, deps.Removal{g: {0}})
		if err != nil {
			t.Fatal(err)
		}
		gr, err := out.Graph()
		if err != nil {
			t.Fatal(err)
		}
		if out.Arch != "" || gr.Node("conv1").Out[0] != 3 || gr.Node("layer1.0.conv2").Out[0] != 3 || gr.Node("layer2.0.conv1").In[0][0] != 3 {
			t.Errorf("got %s", out.JSON())
		}
		if _, err := d.Narrow(spec, deps.Removal{g: {0, 1, 2, 3}}); err == nil || !strings.Contains(err.Error(), "would lose all of its 4 units") {
			t.Errorf("removing a whole layer: %v", err)
		}
		unchanged, err := d.Narrow(spec, deps.Removal{})
		if err != nil || unchanged.JSON() != spec.JSON() {
			t.Errorf("an empty removal changed the spec: %v %s", err, unchanged.JSON())
		}
	})
}
