// Shared by the GEMV and GEMM matmul kernels: out[t][r] = Σ_i x[t][i] · w[r][i] (+ bias[r]), with
// `w` decoded by `load8`. Sums are f32; the bias is added last, as the CPU does. `W` holds one
// part of the weight, rows row0..row0+n of the whole, whose outputs are columns row0.. of rows of
// `out_stride` values.
struct Params {
    m: u32,
    // Rows of this part.
    n: u32,
    k: u32,
    // Bytes of one weight row.
    row_bytes: u32,
    // 0: no bias, 1: f32, 2: f16.
    bias_kind: u32,
    // GEMM tiles along n and m.
    tiles_n: u32,
    tiles_m: u32,
    // The part's first row in the whole weight, and the whole weight's rows.
    row0: u32,
    out_stride: u32,
    // Rows per workgroup of the subgroup GEMV.
    wg_rows: u32,
    _pad: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
// Without a bias this is bound to the weight again (a binding must exist) and never read.
@group(0) @binding(2) var<storage, read> B: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// Writes output `row` (of this part) of token `t`, with its bias.
fn put(t: u32, row: u32, s: f32) {
    out[t * p.out_stride + p.row0 + row] = with_bias(s, p.row0 + row);
}

// `s` plus bias value `row` (of the whole weight).
fn with_bias(s: f32, row: u32) -> f32 {
    if (p.bias_kind == 1u) {
        return s + bitcast<f32>(B[row]);
    }
    if (p.bias_kind == 2u) {
        return s + f16_bits_to_f32((B[row >> 1u] >> ((row & 1u) * 16u)) & 0xffffu);
    }
    return s;
}

// Activation i of the token starting at `off`; zero past `k`, matching the zeros `load8` gives
// there (a float row's last group), so that a NaN or infinity past the row cannot leak in.
fn x_at(off: u32, i: u32) -> f32 {
    if (i >= p.k) {
        return 0.0;
    }
    return x[off + i];
}

fn x4(off: u32, i: u32) -> vec4<f32> {
    return vec4<f32>(x_at(off, i), x_at(off, i + 1u), x_at(off, i + 2u), x_at(off, i + 3u));
}
