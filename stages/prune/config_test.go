package prune

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/internal/testkit"
)

// TestDecodeErrors checks that every bad combination is caught while decoding,
// with a message that names the key and says what to write instead.
func TestDecodeErrors(t *testing.T) {
	lt := func(kv ...any) map[string]any {
		m := map[string]any{"method": "lottery_ticket", "train": map[string]any{"epochs": 2}}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	l1 := func(kv ...any) map[string]any {
		m := map[string]any{"method": "l1_unstructured", "amount": 0.5}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		raw  map[string]any
		want string // "" means valid
	}{
		{"fraction", l1(), ""},
		{"count", l1("amount", 3), ""},
		{"fraction above one", l1("amount", 1.5), "amount: a fraction must be in [0, 1], got 1.5; to prune a count write an integer"},
		{"integral float above one", l1("amount", 5.0), "amount: a fraction must be in [0, 1], got 5.0; to prune 5 units write the integer 5 (no decimal point)"},
		{"negative fraction", l1("amount", -0.5), "amount: a fraction must be in [0, 1], got -0.5"},
		{"negative count", l1("amount", -3), "amount: a count cannot be negative, got -3"},
		{"string amount", l1("amount", "50%"), `amount: must be an integer count (amount: 100) or a fraction in [0, 1] (amount: 0.5), got the string "50%"`},
		{"no amount", map[string]any{"method": "l1_unstructured"}, "amount: missing"},
		{"no method", map[string]any{"amount": 0.5}, "method: missing: choose random_unstructured, l1_unstructured"},
		{"unknown method", l1("method", "l2_unstructured"), `method: "l2_unstructured" is not one of`},
		{"unknown key", l1("amout", 0.5), "amout: unknown key"},
		{"layer twice", l1("layers", []any{"fc1", "fc2", "fc1"}), `layers.2: layer "fc1" is listed twice`},
		{"n on l1", l1("n", 1), "n: applies only to method ln_structured or group_norm, not l1_unstructured"},
		{"dim on l1", l1("dim", 1), "dim: applies only to method ln_structured"},
		{"dim 2", l1("method", "ln_structured", "dim", 2), "dim: 2 is above the maximum 1"},
		{"physical on l1", l1("physical", true), "physical: applies only to method ln_structured"},
		{"physical dim 1", l1("method", "ln_structured", "dim", 1, "physical", true), "physical: removes whole units, so it needs dim: 0"},
		{"physical all channels", l1("method", "ln_structured", "amount", 1.0, "physical", true), "amount: 1.0 prunes every channel, and physical removes pruned channels"},
		{"physical group_norm all channels", l1("method", "group_norm", "amount", 1.0, "physical", true), "amount: 1.0 prunes every channel"},
		{"masked all channels", l1("method", "group_norm", "amount", 1.0), ""},
		{"physical count 1", l1("method", "ln_structured", "amount", 1, "physical", true), ""},
		{"n inf", l1("method", "ln_structured", "n", "inf"), ""},
		{"n yaml inf", l1("method", "ln_structured", "n", math.Inf(1)), ""},
		{"n -inf", l1("method", "ln_structured", "n", "-inf"), ""},
		{"n fro", l1("method", "ln_structured", "n", "fro"), ""},
		{"n 3", l1("method", "ln_structured", "n", 3), ""},
		{"n zero", l1("method", "ln_structured", "n", 0), "n: must be a positive number (1, 2, ...), inf, -inf or fro, got 0"},
		{"n nuc", l1("method", "ln_structured", "n", "nuc"), "n: the nuclear norm"},
		{"n word", l1("method", "ln_structured", "n", "two"), `n: must be a positive number, inf, -inf or fro, got the string "two"`},
		{"rounds on l1", l1("rounds", 3), "rounds: applies only to method lottery_ticket, not l1_unstructured"},
		{"rewind on l1", l1("rewind", map[string]any{"epoch": 1}), "rewind: applies only to method lottery_ticket"},
		{"train on l1", l1("train", map[string]any{"epochs": 9}), "train: applies only to method lottery_ticket"},
		{"lottery", lt(), ""},
		{"lottery rewind epoch", lt("rewind", map[string]any{"epoch": 1}), ""},
		{"lottery rewind init", lt("rewind", "init"), ""},
		{"lottery with amount", lt("amount", 0.5), "amount: lottery_ticket prunes rate of the remaining weights each round"},
		{"lottery with finetune", lt("finetune", map[string]any{"epochs": 1}), "finetune: lottery_ticket retrains every round with train"},
		{"lottery no epochs", lt("train", map[string]any{"epochs": 0}), "train.epochs: lottery_ticket trains every round"},
		{"rewind past training", lt("rewind", map[string]any{"epoch": 3}), "rewind.epoch: epoch 3 is past the first training's last epoch (train.epochs: 2)"},
		{"rewind word", lt("rewind", "start"), `rewind: must be init or {epoch: K}, got the string "start"`},
		{"rewind bad key", lt("rewind", map[string]any{"epochs": 1}), "rewind.epochs: unknown key"},
		{"rate one", lt("rate", 1.0), "rate: 1 must be less than 1"},
		{"select", lt("select", "best"), `select: "best" is not one of last, best_val`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeInto(tt.raw, New())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error; want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, tt.want)
			}
		})
	}
}

// TestAmountKeepsItsKind checks that 1 and 1.0 stay different all the way to the
// cache key: one prunes one unit, the other everything.
func TestAmountKeepsItsKind(t *testing.T) {
	one, all := decode(t, map[string]any{"method": "l1_unstructured", "amount": 1}), decode(t, map[string]any{"method": "l1_unstructured", "amount": 1.0})
	if !one.Amount.IsCount() || all.Amount.IsCount() {
		t.Fatalf("amount 1 count=%v, amount 1.0 count=%v", one.Amount.IsCount(), all.Amount.IsCount())
	}
	n1, _ := one.Amount.Of(60, "weights")
	n2, _ := all.Amount.Of(60, "weights")
	if n1 != 1 || n2 != 60 {
		t.Errorf("of 60: amount 1 prunes %d, amount 1.0 prunes %d", n1, n2)
	}
	k1, _ := json.Marshal(one)
	k2, _ := json.Marshal(all)
	if string(k1) == string(k2) {
		t.Errorf("both configs marshal to %s: they would share a cache key", k1)
	}
	if !strings.Contains(string(k2), `"amount":1.0`) {
		t.Errorf("amount 1.0 marshals as %s", k2)
	}
}

// TestCountTooLarge checks that a count beyond what is left names the layer.
func TestCountTooLarge(t *testing.T) {
	tests := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"method": "l1_unstructured", "amount": 61, "layers": []any{"fc3"}}, "layer fc3 (fc3.weight): amount 61 is more than the 60 weights still unpruned"},
		{map[string]any{"method": "random_unstructured", "amount": 49}, "layer fc1 (fc1.weight): amount 49 is more than the 48 weights still unpruned"},
		{map[string]any{"method": "global_unstructured", "amount": 145, "layers": []any{"fc1", "fc2"}}, "layers fc1, fc2 together: amount 145 is more than the 144 weights still unpruned"},
		{map[string]any{"method": "ln_structured", "amount": 6, "layers": []any{"fc3"}}, "layer fc3 (fc3.weight, dim 0): amount 6 is more than the 5 channels still unpruned"},
		{map[string]any{"method": "l1_unstructured", "amount": 1, "layers": []any{"fc9"}}, `layers: layer "fc9" is not in the model (its layers: fc1, fc2, fc3)`},
	}
	for _, tt := range tests {
		t.Run(tt.raw["method"].(string), func(t *testing.T) {
			_, err := run(t, newContext(t, testkit.OracleModel(t), nil), tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
