import ZooErrors
import ZooTensor

// MARK: Steps

/// One single-purpose change of a tensor's layout (permute axes, split or merge axes, drop unit axes...),
/// chained into a `LayoutTransform` like adapters.
///
/// A step says which shape it makes of a shape and how it rearranges a `StridedGather` (a lazy view of
/// the source); a chain folds its steps over one view and moves the data once, with one strided copy.
/// A step that cannot be a view (`rearrange` returns false) is applied to a materialised tensor instead.
public protocol LayoutStep: Sendable, CustomStringConvertible {
    /// The shape this step makes of `shape`, or nil when it does not apply.
    func outputShape(_ shape: [Int]) -> [Int]?
    /// Rearranges `view` (whose shape `outputShape` accepts) without moving data; false, leaving `view`
    /// unchanged, when this step cannot be expressed as a view of it.
    func rearrange(_ view: inout StridedGather) -> Bool
    /// Applies the step alone (by default: its rearrangement of `t`, gathered).
    func apply(_ t: Tensor, item: String) throws -> Tensor
}

extension LayoutStep {
    /// Gathers this step's rearrangement of `t`.
    public func apply(_ t: Tensor, item: String) throws -> Tensor {
        var view = StridedGather(t.shape)
        guard outputShape(t.shape) != nil, rearrange(&view) else {
            throw ZooError(.mismatch, "layout step \(self) does not apply to shape \(t.shape)", item: item)
        }
        return try view.gather(t)
    }
}

/// A step that only regroups axes, keeping the elements in row-major order: its rearrangement is a
/// reshape of the view to its output shape.
public protocol ReshapeStep: LayoutStep {}

extension ReshapeStep {
    /// Reshapes the view to `outputShape(view.shape)`.
    public func rearrange(_ view: inout StridedGather) -> Bool {
        guard let out = outputShape(view.shape) else { return false }
        return view.reshape(out)
    }
}

/// Leaves the tensor as it is.
public struct IdentityStep: LayoutStep {
    /// The step.
    public init() {}
    /// `shape`.
    public func outputShape(_ shape: [Int]) -> [Int]? { shape }
    /// Nothing to do.
    public func rearrange(_ view: inout StridedGather) -> Bool { true }
    /// `identity`.
    public var description: String { "identity" }
}

/// Permutes axes: output axis `i` is input axis `order[i]` (numpy's `transpose`).
public struct PermuteAxes: LayoutStep {
    /// The permutation.
    public var order: [Int]
    /// A permutation of `order.count` axes.
    public init(_ order: [Int]) { self.order = order }
    /// The permuted shape, or nil for a shape of another rank.
    public func outputShape(_ shape: [Int]) -> [Int]? {
        guard order.count == shape.count, Set(order) == Set(0..<shape.count) else { return nil }
        return order.map { shape[$0] }
    }
    /// Reorders the view's axes.
    public func rearrange(_ view: inout StridedGather) -> Bool { view.permute(order) }
    /// `permute[...]`.
    public var description: String { "permute\(order)" }
}

/// Splits one axis into several (row-major): `(..., a*b*c, ...)` -> `(..., a, b, c, ...)`.
public struct SplitAxis: ReshapeStep {
    /// The axis split.
    public var axis: Int
    /// The sizes it is split into (their product is its size).
    public var sizes: [Int]
    /// Splits `axis` into `sizes`.
    public init(_ axis: Int, into sizes: [Int]) { self.axis = axis; self.sizes = sizes }
    /// The shape with `axis` replaced by `sizes`, or nil when their product is not its size.
    public func outputShape(_ shape: [Int]) -> [Int]? {
        guard shape.indices.contains(axis), !sizes.isEmpty, sizes.allSatisfy({ $0 >= 0 }),
              let n = try? Checked.elementCount(sizes), n == shape[axis] else { return nil }
        return Array(shape[..<axis]) + sizes + Array(shape[(axis + 1)...])
    }
    /// `split(axis -> sizes)`.
    public var description: String { "split(\(axis) -> \(sizes))" }
}

/// Merges adjacent axes (row-major): `(..., a, b, c, ...)` -> `(..., a*b*c, ...)`.
public struct MergeAxes: ReshapeStep {
    /// The axes merged.
    public var axes: Range<Int>
    /// Merges `axes` into one.
    public init(_ axes: Range<Int>) { self.axes = axes }
    /// The shape with `axes` replaced by their product, or nil when the shape lacks them.
    public func outputShape(_ shape: [Int]) -> [Int]? {
        guard !axes.isEmpty, axes.lowerBound >= 0, axes.upperBound <= shape.count else { return nil }
        return Array(shape[..<axes.lowerBound]) + [shape[axes].reduce(1, *)] + Array(shape[axes.upperBound...])
    }
    /// `merge(a..<b)`.
    public var description: String { "merge(\(axes))" }
}

/// Inserts an axis of size 1 at `axis`.
public struct InsertUnitAxis: ReshapeStep {
    /// Where the new axis goes (0 ... rank).
    public var axis: Int
    /// Inserts a unit axis at `axis`.
    public init(at axis: Int) { self.axis = axis }
    /// The shape with a 1 at `axis`, or nil when `axis` is past the rank.
    public func outputShape(_ shape: [Int]) -> [Int]? {
        guard axis >= 0, axis <= shape.count else { return nil }
        var s = shape
        s.insert(1, at: axis)
        return s
    }
    /// `insert1(at)`.
    public var description: String { "insert1(\(axis))" }
}

/// Drops axes of size 1 (a 1x1 kernel's spatial axes).
public struct DropUnitAxes: ReshapeStep {
    /// The axes dropped (each must have size 1).
    public var axes: Set<Int>
    /// Drops `axes`.
    public init(_ axes: Set<Int>) { self.axes = axes }
    /// The shape without `axes`, or nil when one is missing or not of size 1.
    public func outputShape(_ shape: [Int]) -> [Int]? {
        guard axes.allSatisfy({ shape.indices.contains($0) && shape[$0] == 1 }) else { return nil }
        return shape.indices.filter { !axes.contains($0) }.map { shape[$0] }
    }
    /// `drop1[...]`.
    public var description: String { "drop1\(axes.sorted())" }
}

/// Reorders the input columns of a linear weight `(out, h*w*c)` from `(h, w, c)` order (a channels-last
/// flatten) to `(c, h, w)` order (a channels-first flatten): split the columns, permute, merge them again.
public struct PermuteLinearInputsHWCToCHW: LayoutStep {
    /// The flattened map's height.
    public var h: Int
    /// The flattened map's width.
    public var w: Int
    /// The flattened map's channels.
    public var c: Int
    /// The step for an `h` x `w` x `c` map.
    public init(h: Int, w: Int, c: Int) { self.h = h; self.w = w; self.c = c }

    var steps: [any LayoutStep] { [SplitAxis(1, into: [h, w, c]), PermuteAxes([0, 3, 1, 2]), MergeAxes(1..<4)] }

    /// `shape` itself when it is `(out, h*w*c)`, else nil.
    public func outputShape(_ shape: [Int]) -> [Int]? {
        shape.count == 2 && shape[1] == h * w * c ? shape : nil
    }
    /// Split, permute, merge.
    public func rearrange(_ view: inout StridedGather) -> Bool {
        var v = view
        guard outputShape(v.shape) != nil else { return false }
        for s in steps { guard s.rearrange(&v) else { return false } }
        view = v
        return true
    }
    /// `columns hwc->chw(h, w, c)`.
    public var description: String { "columns hwc->chw(\(h), \(w), \(c))" }
}

// MARK: Chains

/// A layout transform: a chain of `LayoutStep`s applied in order. Its output shape is the steps' shapes
/// composed; `apply` moves the data once (one strided copy on unsafe buffers) or not at all when the
/// chain leaves the bytes in place (a chain of identity steps returns its input).
public struct LayoutTransform: Sendable, CustomStringConvertible {
    /// The steps, first applied first.
    public var steps: [any LayoutStep]

    /// A chain of `steps`.
    public init(_ steps: [any LayoutStep]) { self.steps = steps }

    /// This chain followed by `next`.
    public func then(_ next: any LayoutStep) -> LayoutTransform { LayoutTransform(steps + [next]) }

    /// This chain followed by `next`'s steps.
    public func then(_ next: LayoutTransform) -> LayoutTransform { LayoutTransform(steps + next.steps) }

    /// The steps, joined by `->`.
    public var description: String { steps.isEmpty ? "identity" : steps.map(\.description).joined(separator: " -> ") }

    /// The canonical shape for a source shape, or nil when a step does not apply.
    public func outputShape(_ s: [Int]) -> [Int]? {
        var shape = s
        for step in steps {
            guard let next = step.outputShape(shape) else { return nil }
            shape = next
        }
        return shape
    }

    /// Applies the chain: the steps rearrange one lazy view, gathered once at the end (or earlier, before a
    /// step that cannot be a view). A chain that keeps the bytes in row-major order copies nothing.
    public func apply(_ t: Tensor, item: String) throws -> Tensor {
        guard let out = outputShape(t.shape) else {
            throw ZooError(.mismatch, "layout \(self) does not apply to shape \(t.shape)", item: item)
        }
        if t.elementCount == 0 { return out == t.shape ? t : try t.reshaped(out) }
        var current = t
        var view = StridedGather(t.shape)
        for step in steps {
            if step.rearrange(&view) { continue }
            // Not a view of what came before: move the data so far, then let the step apply itself.
            current = try step.apply(view.gather(current), item: item)
            view = StridedGather(current.shape)
        }
        let result = try view.gather(current)
        guard result.shape == out else {
            throw ZooError(.mismatch, "layout \(self) made \(result.shape), not \(out)", item: item)
        }
        return result
    }
}

/// Keras (channels-last) -> canonical (torchvision) layouts, as chains of steps.
extension LayoutTransform {
    /// Unchanged (one identity step; no copy).
    public static let identity = LayoutTransform([IdentityStep()])
    /// Conv kernel (kh, kw, in, out) -> (out, in, kh, kw).
    public static let hwioToOIHW = LayoutTransform([PermuteAxes([3, 2, 0, 1])])
    /// Depthwise kernel (kh, kw, c, m) -> (c, m, kh, kw) -> (c*m, kh, kw) -> (c*m, 1, kh, kw).
    public static let depthwiseToOIHW = LayoutTransform([PermuteAxes([2, 3, 0, 1]), MergeAxes(0..<2), InsertUnitAxis(at: 1)])
    /// Dense kernel (in, out) -> (out, in).
    public static let denseToLinear = LayoutTransform([PermuteAxes([1, 0])])
    /// A per-channel vector (C) as a (C, 1, 1) map (Keras's ConvNeXt `LayerScale` gamma -> torchvision's `layer_scale`).
    public static let channelVectorToMap = LayoutTransform([InsertUnitAxis(at: 1), InsertUnitAxis(at: 2)])
    /// 1x1-conv head kernel (1, 1, in, out) -> (in, out) -> linear (out, in).
    public static let conv1x1ToLinear = LayoutTransform([DropUnitAxes([0, 1]), PermuteAxes([1, 0])])
    /// VGG's first Dense after Flatten: the Dense transpose (h*w*c, out) -> (out, h*w*c), then its input
    /// columns from (h, w, c) to (c, h, w) order. One copy, like the fused permutation it replaces.
    public static func flattenHWCToLinear(h: Int, w: Int, c: Int) -> LayoutTransform {
        denseToLinear.then(PermuteLinearInputsHWCToCHW(h: h, w: w, c: c))
    }
}

// MARK: Views and the copy

/// A lazy permuted and reshaped view of a row-major tensor: `dims` with element `strides` into the source,
/// walked in row-major order by one strided copy; each logical axis of `shape` is a run of adjacent dims.
public struct StridedGather: Sendable, Hashable {
    /// The sizes the copy walks (outermost first).
    public private(set) var dims: [Int]
    /// The source element stride of each of `dims`.
    public private(set) var strides: [Int]
    /// Logical axis `i` is `dims[axes[i]]` flattened row-major (an empty run is an axis of size 1).
    public private(set) var axes: [Range<Int>]

    /// The unchanged view of a row-major tensor of `shape`.
    public init(_ shape: [Int]) {
        dims = shape
        strides = Tensor.contiguousStrides(shape)
        axes = shape.indices.map { $0..<($0 + 1) }
    }

    /// The logical shape.
    public var shape: [Int] { axes.map { dims[$0].reduce(1, *) } }

    /// True when walking the view reads the source in order (a copy would reproduce its bytes).
    public var isInPlace: Bool {
        var expected = 1
        for i in dims.indices.reversed() where dims[i] != 1 {
            guard strides[i] == expected else { return false }
            expected *= dims[i]
        }
        return true
    }

    /// Reorders the logical axes: axis `i` becomes axis `order[i]`; false when `order` is not a permutation of them.
    public mutating func permute(_ order: [Int]) -> Bool {
        guard order.count == axes.count, Set(order) == Set(axes.indices) else { return false }
        var d: [Int] = [], s: [Int] = [], a: [Range<Int>] = []
        for i in order {
            let start = d.count
            d += dims[axes[i]]
            s += strides[axes[i]]
            a.append(start..<d.count)
        }
        (dims, strides, axes) = (d, s, a)
        return true
    }

    /// Regroups the walk into the logical shape `newShape` (same element count), splitting a dim where an
    /// axis boundary falls inside it; false when the view cannot be regrouped so (or holds no elements).
    public mutating func reshape(_ newShape: [Int]) -> Bool {
        guard let n = try? Checked.elementCount(newShape), n == shape.reduce(1, *), n > 0 else { return false }
        if isInPlace { self = StridedGather(newShape); return true }
        var pending = Array(zip(dims, strides).reversed())  // popLast() takes the outermost dim left.
        var d: [Int] = [], s: [Int] = [], a: [Range<Int>] = []
        for size in newShape {
            let start = d.count
            var have = 1
            while have < size {
                guard let (dim, stride) = pending.popLast() else { return false }
                if dim == 1 { continue }
                let need = size / have
                if dim <= need && need % dim == 0 {
                    d.append(dim); s.append(stride); have *= dim
                } else if dim % need == 0 {
                    // The axis ends inside this dim: split it into (need, dim / need).
                    d.append(need); s.append(stride * (dim / need)); have = size
                    pending.append((dim / need, stride))
                } else {
                    return false
                }
            }
            a.append(start..<d.count)
        }
        guard pending.allSatisfy({ $0.0 == 1 }) else { return false }
        (dims, strides, axes) = (d, s, a)
        return true
    }

    /// The view's data as a row-major tensor of `shape`: `t` itself (or a zero-copy reshape of it) when
    /// the view is in place, else one strided copy.
    public func gather(_ t: Tensor) throws -> Tensor {
        let out = shape
        if isInPlace { return out == t.shape ? t : try t.reshaped(out) }
        return try WeightTransforms.gather(t, dims: dims, strides: strides).reshaped(out)
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
        let inStrides = t.strides
        return try gather(t, dims: perm.map { t.shape[$0] }, strides: perm.map { inStrides[$0] })
    }

    /// A tensor of shape `dims` whose elements, in row-major order, are `t`'s at element offsets walked with `strides`.
    static func gather(_ t: Tensor, dims: [Int], strides srcStrides: [Int]) throws -> Tensor {
        let size = t.dtype.byteSize
        let n = dims.reduce(1, *)
        return try Tensor(dtype: t.dtype, shape: dims) { dst in
            t.withUnsafeBytes { src in
                guard n > 0, let sb = src.baseAddress, let db = dst.baseAddress else { return }
                switch size {
                case 1: copy(sb, db, UInt8.self, dims, srcStrides, n)
                case 2: copy(sb, db, UInt16.self, dims, srcStrides, n)
                case 4: copy(sb, db, UInt32.self, dims, srcStrides, n)
                default: copy(sb, db, UInt64.self, dims, srcStrides, n)
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
