//===- attn_common.cuh - Types and conversions for generated kernels ------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The first part of every CUDA translation unit attnc emits: element types,
// conversions and math helpers that the generated region functions and the
// kernel templates share. NVRTC compiles it without any CUDA header, so it
// spells out what it needs in PTX.
//
//===----------------------------------------------------------------------===//

typedef unsigned short attnc_b16; // bf16 or f16 storage
typedef long long attnc_index;

#define ATTNC_INF __int_as_float(0x7f800000)
#define ATTNC_DEV static __device__ __forceinline__

ATTNC_DEV float attnc_bf16_to_f32(attnc_b16 h) {
  return __uint_as_float(static_cast<unsigned>(h) << 16);
}
ATTNC_DEV float attnc_f16_to_f32(attnc_b16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
ATTNC_DEV attnc_b16 attnc_f32_to_bf16(float f) {
  attnc_b16 h;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
ATTNC_DEV attnc_b16 attnc_f32_to_f16(float f) {
  attnc_b16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
/// Rounds through the narrow type, as arith.truncf then arith.extf would.
ATTNC_DEV float attnc_round_bf16(float f) { return attnc_bf16_to_f32(attnc_f32_to_bf16(f)); }
ATTNC_DEV float attnc_round_f16(float f) { return attnc_f16_to_f32(attnc_f32_to_f16(f)); }

/// Two floats into one register of two bf16 (f16): `lo` in the low half.
ATTNC_DEV unsigned attnc_pack_bf16x2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
ATTNC_DEV unsigned attnc_pack_f16x2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
/// Two floats packed in the tensor cores' input type (ATTNC_F16 is defined
/// before this file).
ATTNC_DEV unsigned attnc_pack_in(float lo, float hi) {
#if ATTNC_F16
  return attnc_pack_f16x2(lo, hi);
#else
  return attnc_pack_bf16x2(lo, hi);
#endif
}

/// What packing (lo, hi) into `packed` (attnc_pack_in) rounded away,
/// packed the same way.
ATTNC_DEV unsigned attnc_pack_rest(float lo, float hi, unsigned packed) {
#if ATTNC_F16
  return attnc_pack_f16x2(lo - attnc_f16_to_f32(static_cast<attnc_b16>(packed & 0xffffu)),
                          hi - attnc_f16_to_f32(static_cast<attnc_b16>(packed >> 16)));
#else
  return attnc_pack_bf16x2(lo - __uint_as_float(packed << 16),
                           hi - __uint_as_float(packed & 0xffff0000u));
#endif
}

// Sigmoid weights are not normalized: a row's output sums all of them, and
// rounding each to the 16-bit input type costs rows of a few hundred keys
// more than the 2e-2 bar. Their P V runs twice, on P rounded and on the
// rest (attnc_pack_rest), which keeps about 16 significant bits of P.
// (ATTNC_SIGMOID is defined with the variant, after this file.)
#define ATTNC_P_SPLIT ATTNC_SIGMOID

/// c += a * b for one 16x8x16 tile (mma.sync), f32 accumulators.
ATTNC_DEV void attnc_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if ATTNC_F16
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
#endif
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// A value as lane `src` of the warp holds it (every lane takes part). The
/// emitted region parts' structs shuffle field by field through these.
ATTNC_DEV int attnc_shfl(int x, int src) { return __shfl_sync(0xffffffffu, x, src); }
ATTNC_DEV float attnc_shfl(float x, int src) { return __shfl_sync(0xffffffffu, x, src); }
ATTNC_DEV double attnc_shfl(double x, int src) { return __shfl_sync(0xffffffffu, x, src); }
ATTNC_DEV attnc_index attnc_shfl(attnc_index x, int src) {
  return __shfl_sync(0xffffffffu, x, src);
}
ATTNC_DEV bool attnc_shfl(bool x, int src) {
  return __shfl_sync(0xffffffffu, static_cast<int>(x), src) != 0;
}

ATTNC_DEV float attnc_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Integer division as arith defines it; a zero divisor gives 0 here (it is
// undefined behaviour in arith, and the reference reports it as an error).
ATTNC_DEV attnc_index attnc_divsi(attnc_index a, attnc_index b) { return b ? a / b : 0; }
ATTNC_DEV attnc_index attnc_remsi(attnc_index a, attnc_index b) { return b ? a % b : 0; }
ATTNC_DEV attnc_index attnc_clamp_index(attnc_index n, attnc_index len) {
  return n < 0 ? 0 : n > len ? len : n;
}
/// What a region reads from an empty tensor (at index 0, where every index
/// of an empty dim clamps to).
__device__ const unsigned long long attnc_zeros[2] = {0, 0};
/// `p`, or attnc_zeros when its tensor is empty (a select, not a branch:
/// both arguments are evaluated).
template <typename T> ATTNC_DEV const T *attnc_or_zeros(const T *p, bool nonEmpty) {
  return nonEmpty ? p : reinterpret_cast<const T *>(attnc_zeros);
}
/// A region's tensor index clamped to [0, n - 1] (0 when n is 0).
ATTNC_DEV attnc_index attnc_clamp_read(attnc_index i, attnc_index n) {
  return i < 0 ? 0 : i < n ? i : n > 0 ? n - 1 : 0;
}
/// The same for a 32-bit index (a position or a head): compared in 32 bits
/// against the dim capped at INT_MAX, which every int index is below or at;
/// the cap is the same for every element, so it is computed once.
ATTNC_DEV int attnc_clamp_read(int i, attnc_index n) {
  const int n32 = n < 0x7fffffff ? static_cast<int>(n) : 0x7fffffff;
  return i < 0 ? 0 : i < n32 ? i : n32 > 0 ? n32 - 1 : 0;
}
ATTNC_DEV attnc_index attnc_floordivsi(attnc_index a, attnc_index b) {
  if (!b)
    return 0;
  attnc_index q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
ATTNC_DEV attnc_index attnc_ceildivsi(attnc_index a, attnc_index b) {
  return -attnc_floordivsi(-a, b);
}

// Asynchronous copies (sm_80 and up), shared by the kernel templates.
ATTNC_DEV unsigned attnc_smem_addr(const void *p) {
  unsigned r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
  return r;
}

/// 16 bytes from global to shared memory; zeros when `pred` is false.
ATTNC_DEV void attnc_cp_async16(void *smem, const void *gmem, bool pred) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(attnc_smem_addr(smem)),
               "l"(gmem), "r"(pred ? 16 : 0));
}
/// 4 bytes from global to shared memory; zeros when `pred` is false.
ATTNC_DEV void attnc_cp_async4(void *smem, const void *gmem, bool pred) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(attnc_smem_addr(smem)),
               "l"(gmem), "r"(pred ? 4 : 0));
}
ATTNC_DEV void attnc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
ATTNC_DEV void attnc_cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }
ATTNC_DEV void attnc_cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

// mbarriers and bulk copies (sm_90 and up), for the Hopper kernels.
ATTNC_DEV void attnc_mbar_init(unsigned long long *bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(attnc_smem_addr(bar)),
               "r"(count));
}
/// Arrives on `bar` and adds `bytes` to the transaction count its phase
/// waits for.
ATTNC_DEV void attnc_mbar_expect(unsigned long long *bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                   attnc_smem_addr(bar)),
               "r"(bytes)
               : "memory");
}
ATTNC_DEV void attnc_mbar_arrive(unsigned long long *bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(attnc_smem_addr(bar))
               : "memory");
}
/// Spins until the barrier's phase of parity `parity` has completed.
ATTNC_DEV void attnc_mbar_wait(unsigned long long *bar, unsigned parity) {
  asm volatile("{\n.reg .pred done;\n"
               "WAIT_%=:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
               "@!done bra WAIT_%=;\n}\n" ::"r"(attnc_smem_addr(bar)),
               "r"(parity)
               : "memory");
}
ATTNC_DEV void attnc_fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/// Adds `bytes` to the transaction count that `bar`'s current phase waits
/// for, without arriving.
ATTNC_DEV void attnc_mbar_expect_tx(unsigned long long *bar, unsigned bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(
                   attnc_smem_addr(bar)),
               "r"(bytes)
               : "memory");
}
/// `bytes` (a multiple of 16; both addresses 16-byte aligned) from global to
/// shared memory by the copy engine, completing on `bar`.
ATTNC_DEV void attnc_bulk_copy(void *dst, const void *src, unsigned bytes,
                               unsigned long long *bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes "
               "[%0], [%1], %2, [%3];\n" ::"r"(attnc_smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(attnc_smem_addr(bar))
               : "memory");
}
