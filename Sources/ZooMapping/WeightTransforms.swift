import ZooErrors
import ZooTensor

/// Layout transforms between Keras (channels-last) and canonical (torchvision) tensors.
public enum LayoutTransform: Sendable, Hashable {
    /// Unchanged.
    case identity
    /// Conv kernel (kh, kw, in, out) -> (out, in, kh, kw).
    case hwioToOIHW
    /// Depthwise kernel (kh, kw, c, m) -> (c*m, 1, kh, kw).
    case depthwiseToOIHW
    /// Dense kernel (in, out) -> (out, in).
    case denseToLinear
    /// 1x1-conv head kernel (1, 1, in, out) -> linear (out, in).
    case conv1x1ToLinear
    /// VGG's first Dense after Flatten: rows in (h, w, c) order -> columns in (c, h, w) order: (h*w*c, out) -> (out, c*h*w).
    case flattenHWCToLinear(h: Int, w: Int, c: Int)

    /// The canonical shape for a source shape, or nil when the transform does not apply.
    public func outputShape(_ s: [Int]) -> [Int]? {
        switch self {
        case .identity: return s
        case .hwioToOIHW: return s.count == 4 ? [s[3], s[2], s[0], s[1]] : nil
        case .depthwiseToOIHW: return s.count == 4 ? [s[2] * s[3], 1, s[0], s[1]] : nil
        case .denseToLinear: return s.count == 2 ? [s[1], s[0]] : nil
        case .conv1x1ToLinear: return s.count == 4 && s[0] == 1 && s[1] == 1 ? [s[3], s[2]] : nil
        case let .flattenHWCToLinear(h, w, c): return s.count == 2 && s[0] == h * w * c ? [s[1], s[0]] : nil
        }
    }

    /// Applies the transform (a copy for every case but identity).
    public func apply(_ t: Tensor, item: String) throws -> Tensor {
        guard let out = outputShape(t.shape) else {
            throw ZooError(.mismatch, "layout \(self) does not apply to shape \(t.shape)", item: item)
        }
        switch self {
        case .identity:
            return t
        case .hwioToOIHW:
            return try WeightTransforms.permute(t, [3, 2, 0, 1]).reshaped(out)
        case .depthwiseToOIHW:
            return try WeightTransforms.permute(t, [2, 3, 0, 1]).reshaped(out)
        case .denseToLinear:
            return try WeightTransforms.permute(t, [1, 0])
        case .conv1x1ToLinear:
            return try WeightTransforms.permute(t.reshaped([t.shape[2], t.shape[3]]), [1, 0])
        case let .flattenHWCToLinear(h, w, c):
            return try WeightTransforms.permute(t.reshaped([h, w, c, t.shape[1]]), [3, 2, 0, 1]).reshaped(out)
        }
    }
}

/// Axis permutation of raw tensors of any dtype.
public enum WeightTransforms {
    /// Returns `t` with its axes permuted: output axis `i` is input axis `perm[i]` (numpy's `transpose`).
    public static func permute(_ t: Tensor, _ perm: [Int]) throws -> Tensor {
        let rank = t.rank
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw ZooError(.badInput, "permutation \(perm) does not fit a tensor of rank \(rank)")
        }
        let outShape = perm.map { t.shape[$0] }
        let inStrides = t.strides
        let srcStrides = perm.map { inStrides[$0] }
        let size = t.dtype.byteSize
        let n = t.elementCount
        return try Tensor(dtype: t.dtype, shape: outShape) { dst in
            t.withUnsafeBytes { src in
                guard n > 0, let sb = src.baseAddress, let db = dst.baseAddress else { return }
                switch size {
                case 1: copy(sb, db, UInt8.self, outShape, srcStrides, n)
                case 2: copy(sb, db, UInt16.self, outShape, srcStrides, n)
                case 4: copy(sb, db, UInt32.self, outShape, srcStrides, n)
                default: copy(sb, db, UInt64.self, outShape, srcStrides, n)
                }
            }
        }
    }

    /// Strided gather: walks the output in row-major order with an odometer over the source strides.
    private static func copy<T>(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _: T.Type, _ shape: [Int], _ strides: [Int], _ n: Int) {
        let s = src.assumingMemoryBound(to: T.self)
        let d = dst.assumingMemoryBound(to: T.self)
        let rank = shape.count
        if rank == 0 { d[0] = s[0]; return }
        let last = rank - 1
        let innerCount = shape[last]
        let innerStride = strides[last]
        var index = [Int](repeating: 0, count: rank)
        var offset = 0
        var o = 0
        index.withUnsafeMutableBufferPointer { idx in
            shape.withUnsafeBufferPointer { sh in
                strides.withUnsafeBufferPointer { st in
                    while o < n {
                        var p = offset
                        for _ in 0..<innerCount { d[o] = s[p]; o += 1; p += innerStride }
                        // Advance the outer axes.
                        var a = last - 1
                        while a >= 0 {
                            idx[a] += 1
                            offset += st[a]
                            if idx[a] < sh[a] { break }
                            offset -= st[a] * sh[a]
                            idx[a] = 0
                            a -= 1
                        }
                        if a < 0 { break }
                    }
                }
            }
        }
    }
}
