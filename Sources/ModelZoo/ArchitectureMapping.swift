/// The architecture step of `zoo convert --arch`: a `Converter` transform between `plan` and `write`.
extension Converter {
    /// Maps the plan's records to the canonical tensors of `arch` (a catalogue name or `auto`),
    /// validating them (see `Mapping.canonicalize`). The plan's metadata gains the architecture,
    /// config, preprocessing and labels; its provenance and extras are kept, the provenance gaining the subtree
    /// the weights came from and the wrappers stripped (`NativeMetadata.Source.key`, `wrappers`). `key` takes
    /// the tensors under that dotted prefix only (`Converter.Options.key`). Returns the report.
    @discardableResult
    public static func mapArchitecture(_ plan: inout Plan, arch: String, allowPartial: Bool, key: String? = nil) throws -> MappingReport {
        let mapped = try Mapping.canonicalize(records: plan.records, structure: plan.structure, arch: arch, allowPartial: allowPartial, key: key)
        var meta = mapped.metadata
        meta.source = plan.metadata.source
        meta.source?.key = mapped.report.key
        meta.source?.wrappers = mapped.report.wrappers
        meta.extras = plan.metadata.extras
        meta.other = plan.metadata.other.filter { $0.0 != NativeMetadata.Key.format } + meta.other
        plan.records = mapped.records
        plan.metadata = meta
        return mapped.report
    }
}
