// Matmul for several tokens (m > 1): a workgroup computes a tile of TILE_N weight rows × TILE_M
// tokens. Per CHUNK values of k it decodes the tile's weights once into workgroup memory (each
// thread one group of eight) and stages the tokens' activations beside them; every decoded value
// is then reused by all TILE_M tokens. Each thread accumulates 4 rows of one token.
const TILE_N: u32 = 64u;
const TILE_M: u32 = 16u;
const CHUNK: u32 = 32u;
// Row pitch of the staged tiles: CHUNK + 1, so threads reading one column of different rows hit
// different memory banks.
const PITCH: u32 = 33u;

var<workgroup> wt: array<f32, 2112>; // TILE_N * PITCH
var<workgroup> xt: array<f32, 528>; // TILE_M * PITCH

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = wg.x + wg.y * nwg.x;
    // The grid may overshoot when it spills into y; the tile index is the same for the whole
    // workgroup, so leaving here keeps the barriers uniform.
    if (tile >= p.tiles_n * p.tiles_m) {
        return;
    }
    let row0 = (tile % p.tiles_n) * TILE_N;
    let tok0 = (tile / p.tiles_n) * TILE_M;
    // This thread's outputs: token `tok`, rows quad + 16·i.
    let tok = lid.x % TILE_M;
    let quad = lid.x / TILE_M;
    // This thread's decoding job: group `dgrp` of row `drow` in each chunk.
    let drow = lid.x / 4u;
    let dgrp = lid.x % 4u;
    let wrow = row0 + drow;
    let wbase = wrow * p.row_bytes;
    var acc = vec4<f32>(0.0);
    let chunks = (p.k + CHUNK - 1u) / CHUNK;
    for (var c = 0u; c < chunks; c = c + 1u) {
        let k0 = c * CHUNK;
        let g = k0 / 8u + dgrp;
        var w = Eight(vec4<f32>(0.0), vec4<f32>(0.0));
        if (wrow < p.n && 8u * g < p.k) {
            w = load8(wbase, g, p.k);
        }
        let at = drow * PITCH + 8u * dgrp;
        wt[at] = w.lo.x;
        wt[at + 1u] = w.lo.y;
        wt[at + 2u] = w.lo.z;
        wt[at + 3u] = w.lo.w;
        wt[at + 4u] = w.hi.x;
        wt[at + 5u] = w.hi.y;
        wt[at + 6u] = w.hi.z;
        wt[at + 7u] = w.hi.w;
        for (var i = lid.x; i < TILE_M * CHUNK; i = i + 256u) {
            let tt = i / CHUNK;
            let kk = i % CHUNK;
            var v = 0.0;
            if (tok0 + tt < p.m) {
                v = x_at((tok0 + tt) * p.k, k0 + kk);
            }
            xt[tt * PITCH + kk] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < CHUNK; kk = kk + 1u) {
            let xv = xt[tok * PITCH + kk];
            acc = acc + xv * vec4<f32>(wt[quad * PITCH + kk], wt[(quad + 16u) * PITCH + kk],
                                       wt[(quad + 32u) * PITCH + kk], wt[(quad + 48u) * PITCH + kk]);
        }
        workgroupBarrier();
    }
    let token = tok0 + tok;
    if (token < p.m) {
        for (var i = 0u; i < 4u; i = i + 1u) {
            let row = row0 + quad + 16u * i;
            if (row < p.n) {
                put(token, row, acc[i]);
            }
        }
    }
}
