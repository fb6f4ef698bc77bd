//! Great-circle geometry on a spherical Earth, in miles and compass degrees:
//! cars report WGS84 positions, and a sphere is well within GPS noise over the
//! few tens of miles a simulated trip covers.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in miles.
const EARTH_RADIUS_MI: f64 = 3958.8;

/// A position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct LatLon {
    /// Degrees north.
    pub(super) lat: f64,
    /// Degrees east.
    pub(super) lon: f64,
}

impl LatLon {
    /// Great-circle (haversine) distance in miles.
    pub(super) fn distance_mi(self, to: LatLon) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), to.lat.to_radians());
        let d_phi = phi2 - phi1;
        let d_lambda = (to.lon - self.lon).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_MI * a.sqrt().min(1.0).asin()
    }

    /// Initial compass bearing toward `to`, in [0, 360).
    pub(super) fn bearing_deg(self, to: LatLon) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), to.lat.to_radians());
        let d_lambda = (to.lon - self.lon).to_radians();
        let y = d_lambda.sin() * phi2.cos();
        let x = phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * d_lambda.cos();
        y.atan2(x).to_degrees().rem_euclid(360.0)
    }

    /// The point `distance_mi` away along the great circle leaving at `bearing_deg`.
    pub(super) fn destination(self, bearing_deg: f64, distance_mi: f64) -> LatLon {
        let delta = distance_mi / EARTH_RADIUS_MI;
        let theta = bearing_deg.to_radians();
        let phi1 = self.lat.to_radians();
        let lambda1 = self.lon.to_radians();
        let sin_phi2 = phi1.sin() * delta.cos() + phi1.cos() * delta.sin() * theta.cos();
        let phi2 = sin_phi2.clamp(-1.0, 1.0).asin();
        let lambda2 = lambda1
            + (theta.sin() * delta.sin() * phi1.cos()).atan2(delta.cos() - phi1.sin() * sin_phi2);
        LatLon {
            lat: phi2.to_degrees(),
            lon: (lambda2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LatLon;

    const PARIS: LatLon = LatLon {
        lat: 48.8566,
        lon: 2.3522,
    };
    const LYON: LatLon = LatLon {
        lat: 45.7640,
        lon: 4.8357,
    };

    #[test]
    fn paris_to_lyon() {
        let d = PARIS.distance_mi(LYON);
        assert!((d - 244.0).abs() < 3.0, "{d}");
        let bearing = PARIS.bearing_deg(LYON);
        assert!((145.0..165.0).contains(&bearing), "{bearing}");
    }

    #[test]
    fn destination_inverts_distance_and_bearing() {
        let there = PARIS.destination(73.0, 12.5);
        assert!((PARIS.distance_mi(there) - 12.5).abs() < 1e-9);
        assert!((PARIS.bearing_deg(there) - 73.0).abs() < 1e-6);
    }
}
