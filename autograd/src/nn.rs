//! Layers: [`Linear`] and [`Mlp`], equinox's `eqx.nn.Linear` and `eqx.nn.MLP` over the tape.
//!
//! A layer registers its leaves in a [`ParamLayout`] when it is built and keeps their ids;
//! `forward` records the layer on a [`Graph`]; `init_member` fills one member's block with
//! equinox's default initialisation (weights and biases uniform in `±1/√fan_in`).

use flock_kernels::{Activation, Element};
use rand::{Rng, RngExt};

use crate::{AutogradError, Graph, ParamId, ParamLayout, Var};

/// `y = x·Wᵀ + b`: equinox's `Linear(in_features, out_features)` with `weight: [out, in]` and
/// `bias: [out]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linear {
    /// The `[out, in]` weight.
    pub weight: ParamId,
    /// The `[out]` bias, if the layer has one.
    pub bias: Option<ParamId>,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

impl Linear {
    /// Registers `{prefix}weight` and (with `use_bias`) `{prefix}bias` in `layout`.
    ///
    /// # Errors
    /// [`AutogradError::DuplicateLeaf`] if the names are taken.
    pub fn new(
        layout: &mut ParamLayout,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        use_bias: bool,
    ) -> Result<Linear, AutogradError> {
        let weight = layout.add(format!("{prefix}weight"), [out_features, in_features])?;
        let bias = if use_bias {
            Some(layout.add(format!("{prefix}bias"), [out_features])?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            in_features,
            out_features,
        })
    }

    /// `activation(x·Wᵀ + b)` for `x: [B, in]` → `[B, out]`, as one fused node.
    ///
    /// # Errors
    /// Shape errors from [`Graph::dense`].
    pub fn forward<T: Element>(
        &self,
        g: &mut Graph<'_, T>,
        x: Var,
        activation: Activation,
    ) -> Result<Var, AutogradError> {
        self.forward_with(g, x, activation, |g, id| g.param(id))
    }

    /// [`Linear::forward`] with each leaf's value given by `leaf(graph, id)` instead of the
    /// parameter buffer — e.g. weights a model samples.
    ///
    /// # Errors
    /// Errors of `leaf`; shape errors from [`Graph::dense`].
    pub fn forward_with<T: Element>(
        &self,
        g: &mut Graph<'_, T>,
        x: Var,
        activation: Activation,
        mut leaf: impl FnMut(&mut Graph<'_, T>, ParamId) -> Result<Var, AutogradError>,
    ) -> Result<Var, AutogradError> {
        let w = leaf(g, self.weight)?;
        let b = self.bias.map(|b| leaf(g, b)).transpose()?;
        g.dense(x, w, b, activation)
    }

    /// Fills this layer's leaves in one member's block with `U(−1/√in, 1/√in)` draws (weights
    /// first, row-major, then biases — the order of equinox's `Linear.__init__`, though not its
    /// random stream).
    ///
    /// # Errors
    /// [`AutogradError::UnknownParameter`] if `layout` is not the one the layer was built in;
    /// [`AutogradError::BufferLength`] if `member` is not one member's block.
    pub fn init_member<T: Element, R: Rng + ?Sized>(
        &self,
        layout: &ParamLayout,
        rng: &mut R,
        member: &mut [T],
    ) -> Result<(), AutogradError> {
        self.init_member_with(WeightInit::Equinox, layout, rng, member)
    }

    /// [`Linear::init_member`] with the weights drawn by `init` (biases always
    /// `U(−1/√in, 1/√in)`); the same number of draws in the same order for every `init`.
    ///
    /// # Errors
    /// As [`Linear::init_member`].
    pub fn init_member_with<T: Element, R: Rng + ?Sized>(
        &self,
        init: WeightInit,
        layout: &ParamLayout,
        rng: &mut R,
        member: &mut [T],
    ) -> Result<(), AutogradError> {
        if member.len() != layout.member_size() {
            return Err(AutogradError::BufferLength {
                what: "member parameters",
                len: member.len(),
                expected: layout.member_size(),
            });
        }
        let fan_in = self.in_features.max(1) as f64;
        let bias_limit = 1.0 / fan_in.sqrt();
        let weight_limit = match init {
            WeightInit::Equinox => bias_limit,
            WeightInit::He => (6.0 / fan_in).sqrt(),
            WeightInit::Glorot => (6.0 / (fan_in + self.out_features.max(1) as f64)).sqrt(),
        };
        for (id, limit) in [(Some(self.weight), weight_limit), (self.bias, bias_limit)] {
            let Some(id) = id else { continue };
            let leaf = layout.leaf(id)?;
            for v in &mut member[leaf.offset..leaf.offset + leaf.len()] {
                *v = T::from_f64(rng.random_range(-limit..limit));
            }
        }
        Ok(())
    }
}

/// How a layer's weights are first drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightInit {
    /// `U(−1/√in, 1/√in)`: equinox's (and PyTorch's) default; weight variance `1/(3·in)`.
    #[default]
    Equinox,
    /// He et al. (2015), uniform: `U(−√(6/in), √(6/in))`, weight variance `2/in`, which keeps
    /// the scale of ReLU activations through deep stacks of layers.
    He,
    /// Glorot and Bengio (2010), uniform: `U(−√(6/(in + out)), √(6/(in + out)))`, weight
    /// variance `2/(in + out)`: scikit-learn's `MLPClassifier` and `MLPRegressor` draw this.
    Glorot,
}

impl WeightInit {
    /// Every initialisation, in the order of their names' listing.
    pub const ALL: [WeightInit; 3] = [WeightInit::Equinox, WeightInit::He, WeightInit::Glorot];

    /// The initialisation's name in files and on the command line: `equinox`, `he` or `glorot`.
    pub fn name(self) -> &'static str {
        match self {
            WeightInit::Equinox => "equinox",
            WeightInit::He => "he",
            WeightInit::Glorot => "glorot",
        }
    }

    /// The initialisation named `name` ([`WeightInit::name`]).
    pub fn from_name(name: &str) -> Option<WeightInit> {
        WeightInit::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The shape of an [`Mlp`]: `eqx.nn.MLP(in_size, out_size, width_size, depth, activation,
/// final_activation)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input features.
    pub in_size: usize,
    /// Output features.
    pub out_size: usize,
    /// Units in each hidden layer.
    pub width_size: usize,
    /// Number of hidden layers (`depth + 1` linear layers in all).
    pub depth: usize,
    /// Applied after every hidden layer.
    pub activation: Activation,
    /// Applied after the last layer (identity by default).
    pub final_activation: Activation,
    /// Whether the layers have biases.
    pub use_bias: bool,
}

impl MlpConfig {
    /// An MLP with biases and an identity final activation.
    pub fn new(
        in_size: usize,
        out_size: usize,
        width_size: usize,
        depth: usize,
        activation: Activation,
    ) -> MlpConfig {
        MlpConfig {
            in_size,
            out_size,
            width_size,
            depth,
            activation,
            final_activation: Activation::Identity,
            use_bias: true,
        }
    }
}

/// A multi-layer perceptron with equinox's naming: leaves `{prefix}layers.{i}.weight`
/// (`[out, in]`) and `{prefix}layers.{i}.bias` (`[out]`).
///
/// ```
/// use flock_autograd::{Activation, Mlp, MlpConfig, ParamLayout, Parameters, Tape};
/// let mut layout = ParamLayout::new();
/// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 32, 2, Activation::Tanh))?;
/// assert_eq!(layout.member_size(), 1153);
/// assert_eq!(layout.leaves()[2].name, "layers.1.weight");
///
/// let mut params = Parameters::<f32>::zeros(layout.clone(), 4);
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// for e in 0..4 {
///     mlp.init_member(&layout, &mut rng, params.member_mut(e))?;
/// }
/// let mut tape = Tape::new();
/// let mut g = tape.graph(&params);
/// let x = g.input(&[0.5; 10], [10, 1])?;
/// let f = mlp.forward(&mut g, x)?;
/// assert_eq!(g.shape(f).dims(), &[10, 1]);
/// # use rand::SeedableRng;
/// # Ok::<(), flock_autograd::AutogradError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    layers: Vec<Linear>,
    config: MlpConfig,
}

impl Mlp {
    /// Registers the MLP's leaves in `layout` under `prefix` (`""` for equinox's top-level names).
    ///
    /// # Errors
    /// [`AutogradError::DuplicateLeaf`] if the names are taken.
    pub fn new(
        layout: &mut ParamLayout,
        prefix: &str,
        config: MlpConfig,
    ) -> Result<Mlp, AutogradError> {
        let mut sizes = vec![config.in_size];
        sizes.extend(std::iter::repeat_n(config.width_size, config.depth));
        sizes.push(config.out_size);
        Mlp::build(layout, prefix, &sizes, config)
    }

    /// An MLP whose hidden layers have the widths `hidden` (input first: `in_size → hidden[0] →
    /// … → out_size`; no hidden layer for `[]`), with biases, `activation` after every hidden
    /// layer and an identity output — scikit-learn's `hidden_layer_sizes`. Its
    /// [`config`](Mlp::config) gives the widest hidden layer as `width_size`.
    ///
    /// ```
    /// use flock_autograd::{Activation, Mlp, ParamLayout};
    /// let mut layout = ParamLayout::new();
    /// let mlp = Mlp::with_hidden(&mut layout, "", 3, &[8, 4], 2, Activation::Relu)?;
    /// assert_eq!(mlp.hidden_sizes(), vec![8, 4]);
    /// assert_eq!(layout.member_size(), (3 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2));
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// [`AutogradError::DuplicateLeaf`] if the names are taken.
    pub fn with_hidden(
        layout: &mut ParamLayout,
        prefix: &str,
        in_size: usize,
        hidden: &[usize],
        out_size: usize,
        activation: Activation,
    ) -> Result<Mlp, AutogradError> {
        let width = hidden.iter().copied().max().unwrap_or(0);
        let config = MlpConfig::new(in_size, out_size, width, hidden.len(), activation);
        let mut sizes = vec![in_size];
        sizes.extend_from_slice(hidden);
        sizes.push(out_size);
        Mlp::build(layout, prefix, &sizes, config)
    }

    /// Layers between consecutive `sizes`.
    fn build(
        layout: &mut ParamLayout,
        prefix: &str,
        sizes: &[usize],
        config: MlpConfig,
    ) -> Result<Mlp, AutogradError> {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                Linear::new(
                    layout,
                    &format!("{prefix}layers.{i}."),
                    pair[0],
                    pair[1],
                    config.use_bias,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mlp { layers, config })
    }

    /// The widths of the hidden layers, input side first.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.layers
            .iter()
            .skip(1)
            .map(|layer| layer.in_features)
            .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// Records the MLP on `g`: `x: [B, in_size]` → `[B, out_size]`.
    ///
    /// # Errors
    /// Shape errors from [`Graph::dense`] (e.g. `x` with the wrong number of features).
    pub fn forward<T: Element>(&self, g: &mut Graph<'_, T>, x: Var) -> Result<Var, AutogradError> {
        self.forward_with(g, x, |g, id| g.param(id))
    }

    /// [`Mlp::forward`] with each leaf's value given by `leaf(graph, id)` instead of the
    /// parameter buffer — e.g. weights a model samples, one value per leaf of the layout.
    ///
    /// ```
    /// use flock_autograd::{Activation, Mlp, MlpConfig, ParamLayout, Parameters, Tape};
    /// let mut layout = ParamLayout::new();
    /// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(2, 1, 4, 1, Activation::Tanh))?;
    /// let mut params = Parameters::<f64>::zeros(layout.clone(), 1);
    /// params.member_mut(0).iter_mut().enumerate().for_each(|(i, v)| *v = 0.1 * i as f64);
    /// let mut tape = Tape::new();
    /// let mut g = tape.graph(&params);
    /// let x = g.input(&[0.5, -1.0], [1, 2])?;
    /// // The same values, as inputs rather than parameters.
    /// let leaves = layout
    ///     .leaves()
    ///     .iter()
    ///     .map(|leaf| g.input(&params.member(0)[leaf.offset..leaf.offset + leaf.len()], leaf.shape))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let from_inputs = mlp.forward_with(&mut g, x, |_, id| Ok(leaves[id.index()]))?;
    /// let from_params = mlp.forward(&mut g, x)?;
    /// assert_eq!(g.values(from_inputs, 0), g.values(from_params, 0));
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    ///
    /// # Errors
    /// Errors of `leaf`; shape errors from [`Graph::dense`].
    pub fn forward_with<T: Element>(
        &self,
        g: &mut Graph<'_, T>,
        x: Var,
        mut leaf: impl FnMut(&mut Graph<'_, T>, ParamId) -> Result<Var, AutogradError>,
    ) -> Result<Var, AutogradError> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let activation = if i == last {
                self.config.final_activation
            } else {
                self.config.activation
            };
            h = layer.forward_with(g, h, activation, &mut leaf)?;
        }
        Ok(h)
    }

    /// Equinox's default initialisation of one member's block, layer by layer.
    ///
    /// # Errors
    /// As [`Linear::init_member`].
    pub fn init_member<T: Element, R: Rng + ?Sized>(
        &self,
        layout: &ParamLayout,
        rng: &mut R,
        member: &mut [T],
    ) -> Result<(), AutogradError> {
        self.init_member_with(WeightInit::Equinox, layout, rng, member)
    }

    /// [`Mlp::init_member`] with every layer's weights drawn by `init`.
    ///
    /// # Errors
    /// As [`Linear::init_member`].
    pub fn init_member_with<T: Element, R: Rng + ?Sized>(
        &self,
        init: WeightInit,
        layout: &ParamLayout,
        rng: &mut R,
        member: &mut [T],
    ) -> Result<(), AutogradError> {
        for layer in &self.layers {
            layer.init_member_with(init, layout, rng, member)?;
        }
        Ok(())
    }

    /// [`Mlp::init_member`] as an ensemble's `init_fn`: each call returns a fresh member block of
    /// `layout` (the layout this MLP was built in, and only it — a block of another layout is
    /// a programming error and panics).
    ///
    /// ```
    /// use flock_autograd::{Activation, Mlp, MlpConfig, ParamLayout};
    /// let mut layout = ParamLayout::new();
    /// let mlp = Mlp::new(&mut layout, "", MlpConfig::new(1, 1, 8, 2, Activation::Tanh))?;
    /// let mut init = mlp.member_init::<f64, rand_pcg::Pcg64>(&layout);
    /// let block = init(&mut rand_pcg::Pcg64::new(1, 2));
    /// assert_eq!(block.len(), layout.member_size());
    /// # Ok::<(), flock_autograd::AutogradError>(())
    /// ```
    pub fn member_init<T: Element, R: Rng + ?Sized>(
        &self,
        layout: &ParamLayout,
    ) -> impl FnMut(&mut R) -> Vec<T> + Send + Sync + Clone + use<T, R> {
        self.member_init_with(WeightInit::Equinox, layout)
    }

    /// [`Mlp::member_init`] with the weights drawn by `init`.
    pub fn member_init_with<T: Element, R: Rng + ?Sized>(
        &self,
        init: WeightInit,
        layout: &ParamLayout,
    ) -> impl FnMut(&mut R) -> Vec<T> + Send + Sync + Clone + use<T, R> {
        let (mlp, layout) = (self.clone(), layout.clone());
        move |rng: &mut R| {
            let mut block = vec![T::ZERO; layout.member_size()];
            mlp.init_member_with(init, &layout, rng, &mut block)
                .expect("the layout is the one the MLP was built in");
            block
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// He's weights fill `U(±√(6/in))` (variance `2/in`), biases stay equinox's, and equinox's
    /// initialisation is the default, draw for draw.
    #[test]
    fn weight_initialisations() {
        let mut layout = ParamLayout::new();
        let mlp = Mlp::with_hidden(&mut layout, "", 150, &[100], 2, Activation::Relu).unwrap();
        let draw = |init: Option<WeightInit>| {
            let mut block = vec![0.0f64; layout.member_size()];
            let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
            match init {
                Some(init) => mlp.init_member_with(init, &layout, &mut rng, &mut block),
                None => mlp.init_member(&layout, &mut rng, &mut block),
            }
            .unwrap();
            block
        };
        assert_eq!(draw(None), draw(Some(WeightInit::Equinox)));
        let he = draw(Some(WeightInit::He));
        let weight = layout.leaves()[0].clone();
        let w = &he[weight.offset..weight.offset + weight.len()];
        let limit = (6.0f64 / 150.0).sqrt();
        assert!(w.iter().all(|v| v.abs() < limit));
        let variance = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!(
            (variance - 2.0 / 150.0).abs() < 0.05 * 2.0 / 150.0,
            "{variance}"
        );
        let bias = layout.leaves()[1].clone();
        let b = &he[bias.offset..bias.offset + bias.len()];
        assert!(b.iter().all(|v| v.abs() < 1.0 / 150f64.sqrt()));
        // scikit-learn's: the 150 → 100 layer's weights within √(6/250), variance 2/250; the
        // same draws in the same order, so the biases are He's.
        let glorot = draw(Some(WeightInit::Glorot));
        let w = &glorot[weight.offset..weight.offset + weight.len()];
        assert!(w.iter().all(|v| v.abs() < (6.0f64 / 250.0).sqrt()));
        let variance = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!(
            (variance - 2.0 / 250.0).abs() < 0.05 * 2.0 / 250.0,
            "{variance}"
        );
        assert_eq!(
            glorot[bias.offset..bias.offset + bias.len()],
            he[bias.offset..bias.offset + bias.len()]
        );
        for init in WeightInit::ALL {
            assert_eq!(WeightInit::from_name(init.name()), Some(init));
        }
    }
}
