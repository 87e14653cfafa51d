//! omsup-engine
