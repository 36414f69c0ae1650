/// The bench's summary statistics, one place for every report (`Report`, `pipeline --interleave`).
enum Statistics {
    /// The median of `values` (the mean of the middle two for an even count; 0 for none).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    /// The value at fraction `q` (0...1) of `sorted` (ascending, not empty), by nearest rank: the
    /// smallest value with at least `q` of them at or below it.
    static func quantile(sorted: [Double], _ q: Double) -> Double {
        sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
    }
}
