//! omsup-testworld
