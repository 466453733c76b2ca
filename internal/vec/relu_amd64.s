// Written by hand (not by gen.go): two loops of eight lanes.

//go:build !purego

#include "textflag.h"

// func reluAVX2(n int, y *float32)
// max(v, 0) is VMAXPS's (v > 0 ? v : 0), then NaN lanes put back.
TEXT ·reluAVX2(SB), NOSPLIT, $0-16
	MOVQ   n+0(FP), AX
	MOVQ   y+8(FP), CX
	VXORPS Y0, Y0, Y0

relu_loop:
	CMPQ      AX, $0x08
	JL        relu_done
	VMOVUPS   (CX), Y1
	VMAXPS    Y0, Y1, Y2
	VCMPPS    $0x03, Y1, Y1, Y3
	VBLENDVPS Y3, Y1, Y2, Y2
	VMOVUPS   Y2, (CX)
	ADDQ      $0x20, CX
	SUBQ      $0x08, AX
	JMP       relu_loop

relu_done:
	VZEROUPPER
	RET

// func addReluAVX2(n int, y *float32, r *float32)
TEXT ·addReluAVX2(SB), NOSPLIT, $0-24
	MOVQ   n+0(FP), AX
	MOVQ   y+8(FP), CX
	MOVQ   r+16(FP), DX
	VXORPS Y0, Y0, Y0

add_loop:
	CMPQ      AX, $0x08
	JL        add_done
	VMOVUPS   (CX), Y1
	VADDPS    (DX), Y1, Y1
	VMAXPS    Y0, Y1, Y2
	VCMPPS    $0x03, Y1, Y1, Y3
	VBLENDVPS Y3, Y1, Y2, Y2
	VMOVUPS   Y2, (CX)
	ADDQ      $0x20, CX
	ADDQ      $0x20, DX
	SUBQ      $0x08, AX
	JMP       add_loop

add_done:
	VZEROUPPER
	RET

// func scaleShiftAVX2(n int, y *float32, a float32, b float32)
// VMULPS then VADDPS: no fused multiply-add, as the scalar loop.
TEXT ·scaleShiftAVX2(SB), NOSPLIT, $0-24
	MOVQ         n+0(FP), AX
	MOVQ         y+8(FP), CX
	VBROADCASTSS a+16(FP), Y0
	VBROADCASTSS b+20(FP), Y1

ss_loop:
	CMPQ    AX, $0x08
	JL      ss_done
	VMULPS  (CX), Y0, Y2
	VADDPS  Y1, Y2, Y2
	VMOVUPS Y2, (CX)
	ADDQ    $0x20, CX
	SUBQ    $0x08, AX
	JMP     ss_loop

ss_done:
	VZEROUPPER
	RET
