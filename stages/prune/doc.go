// Package prune is the prune stage: torch.nn.utils.prune's methods
// (random_unstructured, l1_unstructured, global_unstructured, ln_structured) with
// PyTorch's count rule, the lottery ticket's iterative magnitude pruning with
// rewinding, and structured pruning that removes units for real (physical: true).
//
// Masks are sticky: a pruned weight is an exact zero that later stages, training
// included, keep at zero (model.Layer.Pruned and Weight.Mask). Pruning a pruned
// tensor counts only what is still unpruned, as PyTorch's PruningContainer does.
//
//	stages:
//	  prune:
//	    type: prune
//	    needs: [train]
//	    method: l1_unstructured
//	    amount: 0.8          # a fraction of the unpruned weights; amount: 100 prunes 100
//	    finetune: {epochs: 2}
//
// docs/PRUNING.md describes every method, the choices the spec leaves open, and
// measured results.
package prune
