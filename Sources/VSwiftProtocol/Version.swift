/// vswift's version: the one constant `vswiftd --version`, `vswiftctl --version` and the metrics
/// endpoint (`vswift_build_info`) report. Raised by hand at a release; both programs are always
/// built from one tree, so they never disagree.
public enum VSwiftVersion {
    public static let current = "0.18.0"
}
