//! GPU architecture targets for NVRTC (`sm_XY` from the device's compute capability, or a fixed
//! target such as sm_90 when compiling without a device, e.g. in CI).

use std::fmt;

/// A CUDA compute capability, compiled for as the real architecture `sm_{major}{minor}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GpuArch {
    pub major: u32,
    pub minor: u32,
}

impl GpuArch {
    /// Hopper (H100/H200), the CI compile target.
    pub const SM90: GpuArch = GpuArch { major: 9, minor: 0 };

    /// The NVRTC target name, e.g. `sm_90`.
    pub fn sm_name(&self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

impl fmt::Display for GpuArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sm_name())
    }
}
