// Elementwise kernels over a flat index; the dispatch folds large counts into x and y.
// One entry point per module: the host prepends the body it needs (see `Kernel::source`).

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid;
}
