import Foundation
import ZooErrors

/// A learning-rate schedule: a factor of each parameter group's learning rate per optimiser step,
/// a linear warm-up followed by a constant, step or cosine shape.
///
/// The factors are torch's: `LinearLR(start_factor, end_factor=1, total_iters=warmup)` followed (as by
/// `SequentialLR` at the milestone `warmup`) by `ConstantLR(factor=1)`, `StepLR(step_size, gamma)` or
/// `CosineAnnealingLR(T_max=totalSteps - warmup, eta_min=minFactor * lr)`, the scheduler stepped once
/// per optimiser step. Step `t` counts optimiser steps already taken (the first step uses `factor(atStep: 0)`).
/// Unlike torch's cosine, which climbs again after `T_max`, the cosine stays at its floor past the end.
public struct Schedule: Sendable, Equatable, Codable {
    /// What follows the warm-up.
    public enum Shape: Sendable, Equatable, Codable {
        /// The full learning rate.
        case constant
        /// Multiplied by `gamma` every `every` steps.
        case step(every: Int, gamma: Double)
        /// Half a cosine from 1 to `minFactor`, ending at step `totalSteps` (warm-up included).
        case cosine(totalSteps: Int, minFactor: Double)
    }

    /// What follows the warm-up.
    public var shape: Shape
    /// Steps of linear warm-up (0: none).
    public var warmupSteps: Int
    /// The factor at step 0 of the warm-up, rising linearly to 1 at step `warmupSteps`.
    public var warmupStartFactor: Double

    /// A schedule; throws a usage error for negative steps, a start factor outside (0, 1], a step
    /// size below 1, a negative gamma, a cosine no longer than its warm-up, or a floor outside [0, 1].
    public init(_ shape: Shape = .constant, warmupSteps: Int = 0, warmupStartFactor: Double = 0.1) throws {
        guard warmupSteps >= 0 else { throw ZooError(.usage, "warm-up steps must be 0 or more, got \(warmupSteps)") }
        guard warmupStartFactor > 0, warmupStartFactor <= 1 else {
            throw ZooError(.usage, "the warm-up start factor must be in (0, 1], got \(warmupStartFactor)")
        }
        switch shape {
        case .constant: break
        case let .step(every, gamma):
            guard every >= 1, gamma >= 0, gamma.isFinite else { throw ZooError(.usage, "a step schedule needs every >= 1 and gamma >= 0") }
        case let .cosine(total, floor):
            guard total > warmupSteps else {
                throw ZooError(.usage, "a cosine schedule of \(total) steps must be longer than its \(warmupSteps) warm-up steps")
            }
            guard floor >= 0, floor <= 1 else { throw ZooError(.usage, "the cosine floor must be in [0, 1], got \(floor)") }
        }
        self.shape = shape
        self.warmupSteps = warmupSteps
        self.warmupStartFactor = warmupStartFactor
    }

    /// A constant learning rate, no warm-up.
    public static let constant = Schedule(uncheckedShape: .constant)

    private init(uncheckedShape: Shape) {
        shape = uncheckedShape
        warmupSteps = 0
        warmupStartFactor = 1
    }

    /// The factor of the learning rate at optimiser step `t` (0-based).
    public func factor(atStep t: Int) -> Double {
        let t = max(0, t)
        if t < warmupSteps {
            return warmupStartFactor + (1 - warmupStartFactor) * Double(t) / Double(warmupSteps)
        }
        let u = t - warmupSteps
        switch shape {
        case .constant:
            return 1
        case let .step(every, gamma):
            return pow(gamma, Double(u / every))
        case let .cosine(total, floor):
            let span = total - warmupSteps
            let v = min(u, span)
            return floor + (1 - floor) * (1 + cos(Double.pi * Double(v) / Double(span))) / 2
        }
    }
}
