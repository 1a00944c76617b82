"""The cocaine-craving study (Engeli et al., 2023): rs-fMRI seed connectivity, NAcc glutamate, N-acetylcysteine."""
