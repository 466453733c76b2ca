# Writes the NumPy fixtures npy_test.go reads: each array is np.arange over its
# shape (cast to the dtype), so the test knows the values without a copy here.
# Run with /usr/bin/python3 (NumPy) from this folder.
import numpy as np

def arange(shape, dtype):
    n = int(np.prod(shape))
    a = np.arange(n) - n // 2
    if dtype == np.bool_:
        return (a % 2 == 0).reshape(shape)
    return a.astype(dtype).reshape(shape)

np.save("f4_2x3.npy", arange((2, 3), np.float32))
np.save("f8_4.npy", arange((4,), np.float64))
np.save("i1_3x1x2.npy", arange((3, 1, 2), np.int8))
np.save("u1_0x3.npy", arange((0, 3), np.uint8))
np.save("i4_scalar.npy", np.int32(-7))
np.save("i8_2x2.npy", arange((2, 2), np.int64))
np.save("b1_5.npy", arange((5,), np.bool_))
with open("f4_v2_3.npy", "wb") as f:
    np.lib.format.write_array(f, arange((3,), np.float32), version=(2, 0))
np.savez_compressed("pair.npz", x=arange((2, 3), np.float32), y=arange((4,), np.int64))
