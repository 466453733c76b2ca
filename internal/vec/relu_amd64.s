// Written by hand (not by a generator): one loop of eight lanes.

//go:build !purego

#include "textflag.h"

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

